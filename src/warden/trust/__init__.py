"""Trust inputs: data classification and DLP windows, workload health."""
