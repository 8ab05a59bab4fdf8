{#-
    Incremental models rebuild the rows of their days on or after rebuild_from(): the rows
    of older days are kept as the previous build wrote them.

    warehouse.build_warehouse sets var rebuild_from to the earliest day whose lake partition
    (usage_job_runs, job_tests, workflow_runs) was written since the previous build, minus
    lookback_days: a pipeline (its re-runs, the test results of its commit) spans at most
    lookback_days, so every row whose value can depend on what changed is rebuilt. Without
    the var (dbt run by hand) it is the model's last day minus lookback_days (or, for a model
    without a date column, that of the `relation` it is rebuilt from).
    context_from() is lookback_days earlier again: what a rebuilt row's window functions
    (re-run attempts per pipeline, flakes per commit) must see.
-#}
{% macro rebuild_from(date_column, relation=none) -%}
    {%- if var('rebuild_from', none) -%}
        date '{{ var("rebuild_from") }}'
    {%- else -%}
        (select coalesce(max({{ date_column }}), date '0001-01-01') - {{ var('lookback_days') | int }} from {{ relation or this }})
    {%- endif -%}
{%- endmacro %}

{#- context_from of an incremental build run by build_warehouse (var rebuild_from set), for
    models that are not incremental themselves (staging's de-duplication, latest_rows). -#}
{% macro build_context_from() -%}
    (date '{{ var("rebuild_from") }}' - {{ var('lookback_days') | int }})
{%- endmacro %}

{% macro context_from(date_column) -%}
    ({{ rebuild_from(date_column) }} - {{ var('lookback_days') | int }})
{%- endmacro %}

{#-
    A redundant filter that lets DuckDB skip lake files: rows whose date column, derived as
    cast(coalesce(<timestamp_column>, <fallback>) as date), is on or after `day` all have
    <timestamp_column> null or on or after midnight (UTC) of `day`. Stated on the stored
    timestamp, it prunes Parquet files and row groups by their statistics, which a filter on
    the derived date cannot.
-#}
{% macro from_day_on(timestamp_column, day) -%}
    ({{ timestamp_column }} is null or {{ timestamp_column }} >= cast({{ day }} as timestamptz))
{%- endmacro %}
