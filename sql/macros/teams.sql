{#-
    Team ownership (circleci_analytics/teams.py; the rules arrive as var `teams`, a list of
    {name, projects, jobs}, first match wins, defined once here for every model).

    team_of(project_slug, job_name): the owning team of a row, as a CASE over the rules in
    order: a rule matches when the project slug GLOBs one of its `projects` and the job name
    one of its `jobs` (an empty list matches anything). Pass no job_name for rows without a
    job (workflows, projects): rules naming job globs never match those. No match, or no
    rules: 'unassigned'.
-#}

{% macro sql_string(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{% macro _any_glob(column, globs) -%}
    {%- if not globs -%}
        true
    {%- elif column is none -%}
        false
    {%- else -%}
        ({% for g in globs %}{{ column }} glob {{ sql_string(g) }}{% if not loop.last %} or {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{% macro team_of(project_slug, job_name=none) -%}
    {%- set rules = var('teams', []) or [] -%}
    {%- if rules | length == 0 -%}
        'unassigned'
    {%- else -%}
        case
        {%- for rule in rules %}
            when {{ _any_glob(project_slug, rule.get('projects', [])) }} and {{ _any_glob(job_name, rule.get('jobs', [])) }}
                then {{ sql_string(rule['name']) }}
        {%- endfor %}
            else 'unassigned'
        end
    {%- endif -%}
{%- endmacro %}

{#- The org slug of a project slug: its first two segments (<vcs>/<org>, or circleci/<org id>
    for GitHub-App and GitLab orgs), which is how CircleCI builds project slugs. -#}
{% macro org_slug_of(project_slug) -%}
    nullif(regexp_extract({{ project_slug }}, '^[^/]+/[^/]+'), '')
{%- endmacro %}

{#- The rules as JSON text (recorded in warehouse_meta: a build with other rules rebuilds
    the incremental marts, which store the team). -#}
{% macro team_rules_json() -%}
    {{ sql_string(tojson(var('teams', []) or [])) }}
{%- endmacro %}

{#- A mart's owner columns, appended to its rows: org_slug, and team (by job where the grain
    has one, else by project). -#}
{% macro owner_columns(job_name=none) -%}
    {{ org_slug_of('project_slug') }} as org_slug,
    {{ team_of('project_slug', job_name) }} as team
{%- endmacro %}
