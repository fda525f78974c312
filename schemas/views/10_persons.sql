-- persons: one row per linked person across all partners. first_seen and last_seen are the
-- earliest and latest dates of any report; partners and countries are the reporting
-- organisations and their countries (lists, sorted); minor is true when any case report
-- registered the person under 18; exploitation is every form of exploitation any case report
-- named (sorted). A person known only from services or assessments has null minor and
-- exploitation. Unlinkable reports (no name or birth date) are not persons here. key_version
-- is the key epoch's key the pseudonym was made with: the same child in two key epochs is two
-- persons (see the key_epochs table).
CREATE VIEW persons AS
-- Written so that the engine can spill it on a lake of millions of persons: each person's
-- reports are first reduced to one row per partner and country with a plain GROUP BY, so the
-- lists need no DISTINCT aggregate (whose per-person hash sets are neither spillable nor
-- accounted to the query's memory limit), and the case facts join the same grouping through a
-- UNION instead of a hash join that would hold every person's facts in memory at once.
WITH sources AS (
  SELECT person_id, partner, reporting_country,
         min(on_date) AS first_seen, max(on_date) AS last_seen,
         NULL AS minor, NULL AS exploitation
  FROM person_reports
  GROUP BY person_id, partner, reporting_country
  UNION ALL
  SELECT person_id, NULL, NULL, NULL, NULL, is_minor, exploitation
  FROM cases WHERE person_id IS NOT NULL
), seen AS (
  SELECT person_id,
         min(first_seen) AS first_seen,
         max(last_seen) AS last_seen,
         array_sort(array_distinct(array_agg(partner) FILTER (WHERE partner IS NOT NULL))) AS partners,
         array_sort(array_distinct(array_agg(reporting_country) FILTER (WHERE reporting_country IS NOT NULL))) AS countries,
         bool_or(minor) AS minor,
         array_sort(array_distinct(flatten(array_agg(exploitation) FILTER (WHERE exploitation IS NOT NULL)))) AS exploitation
  FROM sources
  GROUP BY person_id
)
SELECT person_id, first_seen, last_seen, CAST(cardinality(partners) AS BIGINT) AS partner_count, partners, countries,
       minor, exploitation, split_part(person_id, '_', 2) AS key_version
FROM seen
