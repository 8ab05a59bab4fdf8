"""Team ownership rules: which team owns a project's jobs (the owners file).

A rule is a team name with project-slug globs and job-name globs (DuckDB's GLOB, which
matches like Python's `fnmatch.fnmatchcase`: `*`, `?`, `[abc]`, `[!abc]`, case-sensitive; `*`
also matches `/`). A row belongs to the first rule whose globs it matches; an empty list
matches anything; a rule naming job globs never matches a row without a job (a workflow,
a project), so those fall to the first rule about whole projects. Nothing matched:
`UNASSIGNED`.

The rules come from `[[teams]]` tables in the settings' TOML file, or from a separate
owners file (`owners_file`: TOML with `[[teams]]`, or YAML with a `teams:` list). The
build passes them to dbt as the var `teams` (`sql/macros/teams.sql` turns them into SQL).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

__all__ = ["UNASSIGNED", "Team", "read_owners_file", "team_rules"]

#: The team of rows no rule matches.
UNASSIGNED = "unassigned"


class Team(BaseModel):
    """One ownership rule: a team and the project and job-name globs it owns."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Team name")
    projects: list[str] = Field(default_factory=list, description="Project-slug globs (empty: any project)")
    jobs: list[str] = Field(default_factory=list, description="Job-name globs (empty: any job, and whole projects)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a team needs a name")
        if value == UNASSIGNED:
            raise ValueError(f"{UNASSIGNED!r} is the team of what no rule matches; pick another name")
        return value

    @field_validator("projects", "jobs")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        if any(not g.strip() for g in value):
            raise ValueError("empty glob (leave the list out to match anything)")
        return value


_TEAMS = TypeAdapter(list[Team])


def distinct_names(teams: list[Team]) -> list[Team]:
    """`teams`, refusing a team listed twice (its globs belong in one table)."""
    seen: set[str] = set()
    for team in teams:
        if team.name in seen:
            raise ValueError(f"team {team.name!r} is listed twice; put all its globs in one [[teams]] table")
        seen.add(team.name)
    return teams


def read_owners_file(path: str | Path) -> list[Team]:
    """The rules of an owners file (TOML `[[teams]]` or YAML `teams:`), or ValueError naming
    the file and what is wrong with it."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"owners file {path}: cannot read it ({e.__class__.__name__}: {e})") from None
    is_yaml = path.suffix in (".yml", ".yaml")
    try:
        data: Any = yaml.safe_load(text) if is_yaml else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ValueError(
            f"owners file {path}: invalid {'YAML' if is_yaml else 'TOML'}: {str(e).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict) or set(data) != {"teams"}:
        raise ValueError(f"owners file {path}: expected only a list of teams ([[teams]] tables, or teams: in YAML)")
    try:
        return distinct_names(_TEAMS.validate_python(data["teams"]))
    except ValidationError as e:
        err = e.errors()[0]
        where = "teams" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise ValueError(f"owners file {path}: {where}: {err['msg'].removeprefix('Value error, ')}") from None


def team_rules(teams: list[Team]) -> list[dict[str, Any]]:
    """The rules as the build's dbt var `teams` (plain dicts, in order)."""
    return [team.model_dump() for team in teams]
