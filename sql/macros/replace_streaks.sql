{#-
    fct_recoveries' incremental strategy (`incremental_strategy='replace_streaks'`; dbt calls
    get_incremental_<strategy>_sql). An incremental build recomputes the stored streaks that
    streak_rebuilt() selects, whatever they turned into: a streak can vanish, not only change
    (a run known from the usage export only reads as a failure; when Insights lands it the
    next night it may be canceled, so the streak it opened is gone). delete+insert by
    first_failed_run_id would keep such a streak, its key being no longer produced; this
    deletes every streak the build recomputed (and any stored row of a key it produced),
    then inserts what it produced.
-#}
{% macro get_incremental_replace_streaks_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where {{ streak_rebuilt() }}
        or {{ key }} in (select {{ key }} from {{ source }});

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#-
    The stored fct_recoveries rows an incremental build recomputes: the open streaks (their
    age grows) and those whose recovering success stopped from rebuild_from on (a superset of
    "recovered by a run created from rebuild_from on"; every streak holding a run of a rebuilt
    day is one of them). A streak recovered before rebuild_from holds runs of older days
    only, which do not change. Read by the model (where to start recomputing) and by the
    strategy above (what to delete), so the two cannot disagree.
-#}
{% macro streak_rebuilt() -%}
    (is_open or recovered_at is null
        or recovered_at >= cast({{ rebuild_from('run_date', ref('fct_workflow_runs')) }} as timestamptz))
{%- endmacro %}
