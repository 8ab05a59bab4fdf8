-- Data freshness: the warehouse's as-of date and build time (page headers).
-- One row from warehouse_meta: as_of_date = last complete day of data (UTC), built_at =
-- when build_warehouse ran. `select *` so an `extracted_at` column, if the warehouse adds
-- one, is shown as the extraction time instead.
select * from warehouse_meta
