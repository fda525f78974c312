-- country_profiles: year of registration × reporting country: distinct linked persons, minors
-- among them and their share, the main form of exploitation (most persons; ties alphabetical),
-- and victims per 100 000 population (SDG 16.2.2) with the population used and its year (the
-- latest Eurostat figure on or before that year). unlinked_reports counts case reports without
-- a person_id: they are not in persons, which is therefore a lower bound.
CREATE VIEW country_profiles AS
WITH c AS (
  SELECT CAST(date_part('year', registered_on) AS INT) AS year, reporting_country AS country,
         person_id, is_minor, exploitation
  FROM cases
), base AS (
  SELECT year, country,
         count(DISTINCT person_id) AS persons,
         count(DISTINCT CASE WHEN is_minor THEN person_id END) AS minors,
         count(*) FILTER (WHERE person_id IS NULL) AS unlinked_reports
  FROM c GROUP BY year, country
), ex AS (
  SELECT year, country, e AS exploitation, count(DISTINCT person_id) AS n
  FROM (SELECT year, country, person_id, unnest(exploitation) AS e FROM c WHERE person_id IS NOT NULL)
  GROUP BY year, country, e
), top AS (
  SELECT year, country, exploitation,
         row_number() OVER (PARTITION BY year, country ORDER BY n DESC, exploitation) AS rk
  FROM ex
), pop AS (
  SELECT b.year, b.country, max(p.year) AS population_year
  FROM base b JOIN population p ON p.country = b.country AND p.year <= b.year
  GROUP BY b.year, b.country
)
SELECT b.year, b.country, b.persons, b.minors,
       round(CAST(b.minors AS DOUBLE) / nullif(b.persons, 0), 3) AS minor_share,
       t.exploitation AS main_exploitation,
       p.population, p.year AS population_year,
       round(CAST(b.persons AS DOUBLE) * 100000 / p.population, 3) AS victims_per_100k,
       b.unlinked_reports
FROM base b
LEFT JOIN top t ON t.year = b.year AND t.country = b.country AND t.rk = 1
LEFT JOIN pop y ON y.year = b.year AND y.country = b.country
LEFT JOIN population p ON p.country = b.country AND p.year = y.population_year
