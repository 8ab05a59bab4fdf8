{#-
    on-run-start: make every table of source `lake` a relation in schema `lake`.

    With var lake_root set (a local lake directory): a view over the table's Parquet files
    (`<lake_root>/<table>/**/data.parquet`, so files landed later are read by the next
    build), or, when none has landed yet, an empty table with the columns and types
    declared in __sources.yml (generated from warehouse/tables.py). With lake_root '' the
    caller has staged them (warehouse.build_warehouse does for an object-store lake).
-#}
{% macro stage_lake_sources() %}
    {%- set lake_root = var('lake_root', '') -%}
    {%- if execute and lake_root -%}
        {%- do run_query('drop schema if exists lake cascade') -%}
        {%- do run_query('create schema lake') -%}
        {%- for source in graph.sources.values() if source.source_name == 'lake' -%}
            {%- set files = lake_root.rstrip('/') ~ '/' ~ source.name ~ '/**/data.parquet' -%}
            {%- set found = run_query("select count(*) from glob('" ~ files.replace("'", "''") ~ "')").columns[0].values()[0] -%}
            {%- if found > 0 -%}
                {%- do run_query(
                    "create view lake." ~ source.name ~ " as select * from read_parquet('"
                    ~ files.replace("'", "''") ~ "', hive_partitioning = false, union_by_name = true)"
                ) -%}
            {%- else -%}
                {%- set columns = [] -%}
                {%- for column in source.columns.values() -%}
                    {%- do columns.append(adapter.quote(column.name) ~ ' ' ~ column.data_type) -%}
                {%- endfor -%}
                {%- do run_query('create table lake.' ~ source.name ~ ' (' ~ columns | join(', ') ~ ')') -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
