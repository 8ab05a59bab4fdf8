{#-
    Staging de-duplication: two CTEs, `<name>_duplicates` and `<name>`, the latter holding the
    rows of `relation` that are the first of their `key` (a list of columns) by `order_by`.

    The lake keeps a table's key unique within a partition, so duplicates are rare (a row
    landed again under another partition): only rows whose key hash occurs more than once
    are ranked, instead of windowing every row. The result is the same rows as a
    row_number() over every key; a hash collision only makes a unique key a candidate,
    ranked alone. Each part reads the relation itself (a CTE read twice is buffered whole)
    and only the columns it needs, so a consumer's filter on the rows prunes lake files.

    In an incremental build (var rebuild_from set) its models read the rows dated from
    context_from on by `timestamp_column`, and duplicates are counted among those rows and
    the rows without one (a row's partition is the day of that timestamp, else of its
    extraction, so only those can move partition): files of older days are not read. A copy
    of a key under an older day's partition with a different timestamp (the source changed a
    past row's time) is the case a full refresh is for; a full build counts every key.
-#}
{% macro latest_rows(name, relation, key, order_by, timestamp_column) -%}
    {%- set key_hash = 'hash(' ~ key | join(', ') ~ ')' -%}
{{ name }}_duplicates as (

    select {{ key_hash }} as key_hash
    from {{ relation }}
    {%- if var('rebuild_from', none) %}
    where {{ from_day_on(timestamp_column, build_context_from()) }}
    {%- endif %}
    group by key_hash
    having count(*) > 1

),

{{ name }} as (

    select *
    from {{ relation }}
    where {{ key_hash }} not in (select key_hash from {{ name }}_duplicates)

    union all by name

    select *
    from {{ relation }}
    where {{ key_hash }} in (select key_hash from {{ name }}_duplicates)
    qualify row_number() over (partition by {{ key | join(', ') }} order by {{ order_by }}) = 1

)
{%- endmacro %}
