-- persons: one row per linked person across all partners. first_seen and last_seen are the
-- earliest and latest dates of any report; partners and countries are the reporting
-- organisations and their countries (lists, sorted); minor is true when any case report
-- registered the person under 18; exploitation is every form of exploitation any case report
-- named (sorted). A person known only from services or assessments has null minor and
-- exploitation. Unlinkable reports (no name or birth date) are not persons here. key_version
-- is the key epoch's key the pseudonym was made with: the same child in two key epochs is two
-- persons (see the key_epochs table).
CREATE VIEW persons AS
WITH seen AS (
  SELECT person_id,
         min(on_date) AS first_seen,
         max(on_date) AS last_seen,
         count(DISTINCT partner) AS partner_count,
         array_sort(array_agg(DISTINCT partner)) AS partners,
         array_sort(array_agg(DISTINCT reporting_country)) AS countries
  FROM person_reports
  GROUP BY person_id
), facts AS (
  SELECT person_id,
         bool_or(is_minor) AS minor,
         array_sort(array_distinct(flatten(array_agg(exploitation) FILTER (WHERE exploitation IS NOT NULL)))) AS exploitation
  FROM cases
  WHERE person_id IS NOT NULL
  GROUP BY person_id
)
SELECT s.person_id, s.first_seen, s.last_seen, s.partner_count, s.partners, s.countries, f.minor, f.exploitation,
       split_part(s.person_id, '_', 2) AS key_version
FROM seen s LEFT JOIN facts f ON f.person_id = s.person_id
