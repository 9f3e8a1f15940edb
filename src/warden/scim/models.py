"""What Warden serves over SCIM 2.0: the ``Agent`` resource type (a core agent schema and
Warden's extension) and ``Group`` (the roles policies use), built on scim2-models so that
validation, serialisation, filters and paths follow RFC 7643 and RFC 7644.

The core schema follows the IETF drafts for agents in SCIM (``name``, ``displayName``,
``active``, ``description``); Warden's extension carries what Warden needs to give the agent
an identity: its owner, purpose, attestation selectors and labels, and, read-only, its SPIFFE
ID and status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Union

from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    ETag,
    Extension,
    External,
    Filter,
    Mutability,
    Patch,
    Reference,
    Required,
    Resource,
    ResourceType,
    Returned,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

AGENT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Agent"
WARDEN_SCHEMA = "urn:warden:scim:schemas:extension:2.0:Agent"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_RESULTS = 200


class AgentGroup(ComplexAttribute):
    """A group the agent is in (read-only: membership is managed on the Group)."""

    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    ref: Annotated[Reference[Group] | None, Mutability.read_only] = Field(
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    display: Annotated[str | None, Mutability.read_only] = None


class Agent(Resource[Any]):
    """An AI agent, bot, service account or other non-person entity."""

    __schema__ = URN(AGENT_SCHEMA)

    name: Annotated[
        str | None, Required.true, Mutability.immutable, Uniqueness.server, CaseExact.true
    ] = None
    """The agent's name in Warden: its SPIFFE ID is spiffe://<trust domain>/agent/<name>."""

    display_name: str | None = None
    active: Annotated[bool | None, Required.true] = None
    """False: the agent is disabled (its next request is denied, renewals are refused).
    Required: an agent is always one or the other."""

    description: str | None = None
    groups: Annotated[list[AgentGroup] | None, Mutability.read_only] = None


class Label(ComplexAttribute):
    key: Annotated[str | None, Required.true, CaseExact.true] = None
    value: Annotated[str | None, CaseExact.true] = None


class WardenAgent(Extension):
    """What Warden needs to give an agent its identity."""

    __schema__ = URN(WARDEN_SCHEMA)

    owner: Annotated[str | None, Required.true] = None
    """The accountable person or team."""

    purpose: str | None = None
    selectors: Annotated[list[str] | None, CaseExact.true] = None
    """Attestation selectors (``unix:uid:1000``...): a workload that presents them all
    attests as this agent at once. A value outside Warden's selector grammar is kept as
    given and matches no workload."""

    labels: list[Label] | None = None
    # What Warden made of the agent: returned when asked for (``attributes=...``), so a
    # client reads back exactly what it wrote unless it asks for more.
    spiffe_id: Annotated[str | None, Mutability.read_only, Returned.request, CaseExact.true] = None
    status: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """active, disabled, quarantined or revoked."""


class MemberType(StrEnum):
    agent = "Agent"


class Member(ComplexAttribute):
    """A member of a group: an agent."""

    value: Annotated[str | None, Required.true, Mutability.immutable, CaseExact.true] = None
    ref: Annotated[Reference[Union[Agent]] | None, Mutability.immutable] = Field(  # noqa: UP007
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    type: Annotated[MemberType | None, Mutability.immutable] = None


class Group(Resource[Any]):
    """A role: the name is the policy group its member agents are in."""

    __schema__ = URN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true, Uniqueness.server] = None
    members: list[Member] | None = None


def service_provider_config() -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A provisioning token (warden scim token create), SCIM only",
                spec_uri=Reference[External]("https://www.rfc-editor.org/rfc/rfc6750"),
                primary=True,
            )
        ],
    )


def provider() -> ScimProvider:
    agent_type = ResourceType.model_validate(
        {
            "id": "Agent",
            "name": "Agent",
            "description": "Agents and other non-person entities",
            "endpoint": "/Agents",
            "schema": AGENT_SCHEMA,
            "schemaExtensions": [{"schema": WARDEN_SCHEMA, "required": True}],
        }
    )
    group_type = ResourceType.model_validate(
        {
            "id": "Group",
            "name": "Group",
            "description": "Roles the policies use",
            "endpoint": "/Groups",
            "schema": GROUP_SCHEMA,
        }
    )
    return ScimProvider(
        models=[Agent, WardenAgent, Group],
        resource_types=[agent_type, group_type],
        config=service_provider_config(),
    )
