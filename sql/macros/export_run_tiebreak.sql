{#- How fct_workflow_runs' runs are ordered within a scope after created_at: runs only in the
    usage export (created_at = their pipeline's creation, shared by its re-runs) by their first
    job's queue time; Insights runs by created_at alone (null here, sorted last), then id. -#}
{% macro export_run_tiebreak(alias=none) -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    case when {{ p }}source = 'usage_export' then {{ p }}first_job_queued_at end
{%- endmacro %}
