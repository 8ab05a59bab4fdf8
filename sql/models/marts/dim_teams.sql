-- The teams of the ownership rules (var `teams`, in rule order), and 'unassigned' last.
{%- set rules = var('teams', []) or [] %}
with

rules as (

    {% for rule in rules -%}
    select
        {{ loop.index }} as rule_order,
        {{ sql_string(rule['name']) }} as team,
        cast([{% for g in rule.get('projects', []) %}{{ sql_string(g) }}{% if not loop.last %}, {% endif %}{% endfor %}] as varchar[]) as project_globs,
        cast([{% for g in rule.get('jobs', []) %}{{ sql_string(g) }}{% if not loop.last %}, {% endif %}{% endfor %}] as varchar[]) as job_globs,
    union all
    {% endfor -%}
    select
        {{ rules | length + 1 }} as rule_order,
        'unassigned' as team,
        cast([] as varchar[]) as project_globs,
        cast([] as varchar[]) as job_globs,

),

final as (

    select
        team,
        rule_order,
        project_globs,
        job_globs,
        team = 'unassigned' as is_unassigned,

    from rules

)

select * from final
