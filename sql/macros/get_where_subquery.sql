{#-
    What a data test reads (dbt calls this for every generic test). In an incremental build
    (var rebuild_from set), a test of a model built incrementally, or of a view declaring
    `meta.dated_by`, reads only the rows dated from the week of rebuild_from on: the rows
    before were tested by the build that wrote them and this build left them as they were.
    A full build tests every row. A test's own `where` config applies as well.

    A model's rows are dated by `meta.dated_by` (null: not by date, every row is tested) or
    else, for an incremental model, by its unique_key (the incremental models here replace
    whole days or weeks, except those that say otherwise).
-#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- if config.get('where') -%}
        {%- do conditions.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set column = dated_by(model) -%}
    {%- if column and var('rebuild_from', none) -%}
        {%- do conditions.append(rebuilt_rows(column)) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The column the tested model's rows are dated by, or none (see get_where_subquery). -#}
{% macro dated_by(test_node) -%}
    {%- set tested = graph.nodes.get(test_node.get('attached_node') or '') if execute else none -%}
    {%- if tested is none -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set meta = tested.get('meta') or {} -%}
    {%- set config_meta = tested.config.get('meta') or {} -%}
    {%- if 'dated_by' in meta or 'dated_by' in config_meta -%}
        {%- do return(meta.get('dated_by') or config_meta.get('dated_by')) -%}
    {%- elif tested.config.materialized == 'incremental' and tested.config.unique_key is string -%}
        {%- do return(tested.config.unique_key) -%}
    {%- endif -%}
    {%- do return(none) -%}
{%- endmacro %}

{#- The rows a test of an incremental build reads, by their date `column` (the week of
    rebuild_from on); every row in a full build. Singular tests use it directly. -#}
{% macro rebuilt_rows(column) -%}
    {%- if var('rebuild_from', none) -%}
        {{ column }} >= cast(date_trunc('week', date '{{ var("rebuild_from") }}') as date)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
