{#- The build parameters (dbt vars, defaults in dbt_project.yml) as typed SQL literals. -#}

{% macro price_per_credit() -%}
    cast('{{ var("price_per_credit") }}' as decimal(18, 10))
{%- endmacro %}

{% macro headroom() -%}
    cast({{ var("headroom") }} as double)
{%- endmacro %}

{% macro as_of_date() -%}
    {%- if var("as_of_date", none) -%}
        date '{{ var("as_of_date") }}'
    {%- else -%}
        cast(null as date)
    {%- endif -%}
{%- endmacro %}

{% macro build_started_at() -%}
    {%- if var("build_started_at", none) -%}
        cast('{{ var("build_started_at") }}' as timestamptz)
    {%- else -%}
        cast(null as timestamptz)
    {%- endif -%}
{%- endmacro %}
