with

resource_classes as (

    select * from {{ ref('resource_classes') }}

),

final as (

    select
        executor,
        resource_class,
        family,
        credits_per_minute,
        vcpus,
        ram_gb,

    from resource_classes

)

select * from final
