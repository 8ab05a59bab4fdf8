{#-
    The model's grain: no two rows share these columns (nulls compare equal, as in a
    group by). dbt's own `unique` takes one column; this is dbt_utils' test of the same
    name, kept here so the project needs no package download.
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as n_rows,
from {{ model }}
group by all
having count(*) > 1

{% endtest %}
