"""What a run may use, as asked and as bounded by Warden's settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from warden.errors import UntrustedInputError

# (default, most) per field: a request may ask for less than the default, never more than most.
BOUNDS: dict[str, tuple[int, int]] = {
    "cpu_s": (5, 60),  # CPU seconds (RLIMIT_CPU)
    "wall_s": (10, 120),  # wall-clock seconds, then the whole run is killed
    "memory_mb": (256, 2048),  # address space (RLIMIT_AS)
    "file_mb": (16, 256),  # largest file it may write (RLIMIT_FSIZE)
    "open_files": (64, 1024),  # RLIMIT_NOFILE
    "processes": (16, 128),  # RLIMIT_NPROC (its own uid) and pids.max
    "output_kb": (64, 1024),  # stdout and stderr each, and each output file, kept
}


@dataclass(frozen=True)
class Limits:
    cpu_s: int = BOUNDS["cpu_s"][0]
    wall_s: int = BOUNDS["wall_s"][0]
    memory_mb: int = BOUNDS["memory_mb"][0]
    file_mb: int = BOUNDS["file_mb"][0]
    open_files: int = BOUNDS["open_files"][0]
    processes: int = BOUNDS["processes"][0]
    output_kb: int = BOUNDS["output_kb"][0]

    @classmethod
    def asked(cls, values: dict[str, Any] | None) -> Limits:
        """The limits a caller asks for; out-of-bounds or unknown ones are refused."""
        values = dict(values or {})
        unknown = set(values) - set(BOUNDS)
        if unknown:
            raise UntrustedInputError(
                f"unknown limits: {', '.join(sorted(unknown))}", code="invalid_limits"
            )
        checked: dict[str, int] = {}
        for name, value in values.items():
            most = BOUNDS[name][1]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise UntrustedInputError(
                    f"{name} must be a whole number from 1 to {most}", code="invalid_limits"
                )
            checked[name] = value
        return cls(**checked)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
