-- monthly_trends: case reports by month of registration × reporting country × form of
-- exploitation × gender × minor × age band × status (presumed or identified). cases counts reports; persons counts distinct linked persons;
-- unlinked_cases counts reports without a person_id (each may or may not be another person).
-- A report naming two forms of exploitation counts under both, so rows do not add up to the
-- total number of cases. Reports without exploitation are under 'unknown'. HTCDS reports carry
-- the month they were submitted (imputed_fields = 'registered_on').
CREATE VIEW monthly_trends AS
WITH c AS (
  SELECT period, reporting_country, gender, is_minor, age_band, status, person_id,
         unnest(CASE WHEN exploitation IS NULL OR array_length(exploitation) = 0
                     THEN make_array('unknown') ELSE exploitation END) AS exploitation_type
  FROM cases
)
SELECT period AS month, reporting_country AS country, exploitation_type AS exploitation, gender,
       is_minor AS minor, age_band, status,
       count(*) AS cases,
       count(DISTINCT person_id) AS persons,
       count(*) FILTER (WHERE person_id IS NULL) AS unlinked_cases
FROM c
GROUP BY period, reporting_country, exploitation_type, gender, is_minor, age_band, status
