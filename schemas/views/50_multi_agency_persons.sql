-- multi_agency_persons: persons known to two or more partners (from any record type), with the
-- number of partners and countries and the kinds of agency that know them (from the registry).
CREATE VIEW multi_agency_persons AS
-- Each person's reports are first reduced to one row per partner and country with a plain GROUP
-- BY, which the engine can spill, so the person-level lists need no DISTINCT aggregate (whose
-- per-person hash sets it can neither spill nor keep within the query's memory limit).
WITH sources AS (
  SELECT person_id, partner, reporting_country
  FROM person_reports
  GROUP BY person_id, partner, reporting_country
), known AS (
  SELECT s.person_id,
         array_sort(array_distinct(array_agg(s.partner))) AS partner_ids,
         array_sort(array_distinct(array_agg(s.reporting_country) FILTER (WHERE s.reporting_country IS NOT NULL))) AS countries,
         array_sort(array_distinct(array_agg(o.type))) AS agency_types
  FROM sources s
  JOIN organisations o ON o.org_id = s.partner
  GROUP BY s.person_id
)
SELECT person_id,
       CAST(cardinality(partner_ids) AS BIGINT) AS partners,
       CAST(cardinality(countries) AS BIGINT) AS countries,
       agency_types,
       partner_ids
FROM known
WHERE cardinality(partner_ids) >= 2
