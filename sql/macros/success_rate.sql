{#- Success rate = successes / (successes + failures), 0-1; null when there are neither
    (metrics.md, "Runs and outcomes"). -#}
{% macro success_rate(successes, failures) -%}
    case when {{ successes }} + {{ failures }} > 0 then {{ successes }} / ({{ successes }} + {{ failures }}) end
{%- endmacro %}
