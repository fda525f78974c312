#!/usr/bin/env python3
"""The analyst views written independently in DuckDB SQL, run against `tip export` output.

Usage: views.py EXPORT_DIR POPULATION_CSV VIEW  -> the view's rows as CSV on stdout, in the
canonical text tip's CSV output uses (lists joined with ';', booleans true/false, nulls empty).
"""
import csv, datetime, sys

import duckdb

def connect(export, population_csv):
    """A DuckDB connection with the lake's tables as views over a `tip export` directory."""
    con = duckdb.connect()
    for t in ["cases", "services", "referrals", "events", "outcomes"]:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{export}/{t}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)")
    con.execute(f"CREATE VIEW organisations AS SELECT * FROM read_parquet('{export}/organisations/*.parquet')")
    con.execute(f"CREATE VIEW population AS SELECT * FROM read_csv('{population_csv}', header = true)")
    return con

person_reports = """
  SELECT person_id, partner, reporting_country, registered_on AS on_date FROM cases WHERE person_id IS NOT NULL
  UNION ALL SELECT person_id, partner, reporting_country, service_date FROM services WHERE person_id IS NOT NULL
  UNION ALL SELECT person_id, partner, reporting_country, sent_on FROM referrals WHERE person_id IS NOT NULL
  UNION ALL SELECT person_id, partner, reporting_country, assessed_on FROM outcomes WHERE person_id IS NOT NULL
"""

QUERIES = {
    "persons": f"""
        WITH r AS ({person_reports}),
        seen AS (
          SELECT person_id, min(on_date) AS first_seen, max(on_date) AS last_seen,
                 count(DISTINCT partner) AS partner_count,
                 list_sort(list(DISTINCT partner)) AS partners,
                 list_sort(list(DISTINCT reporting_country)) AS countries
          FROM r GROUP BY person_id),
        facts AS (
          SELECT person_id, bool_or(is_minor) AS minor,
                 list_sort(list_distinct(flatten(list(exploitation) FILTER (WHERE exploitation IS NOT NULL)))) AS exploitation
          FROM cases WHERE person_id IS NOT NULL GROUP BY person_id)
        SELECT s.person_id, s.first_seen, s.last_seen, s.partner_count, s.partners, s.countries, f.minor, f.exploitation,
               split_part(s.person_id, '_', 2) AS key_version
        FROM seen s LEFT JOIN facts f USING (person_id)""",
    "monthly_trends": """
        SELECT period AS month, reporting_country AS country, e AS exploitation, gender, is_minor AS minor,
               age_band, status, count(*) AS cases, count(DISTINCT person_id) AS persons,
               count(*) FILTER (WHERE person_id IS NULL) AS unlinked_cases
        FROM (SELECT period, reporting_country, gender, is_minor, age_band, status, person_id,
                     unnest(CASE WHEN exploitation IS NULL OR len(exploitation) = 0 THEN ['unknown'] ELSE exploitation END) AS e
              FROM cases)
        GROUP BY ALL""",
    "information_streams": """
        SELECT from_org, from_org_type, from_country, to_org, to_org_type, to_country, kind, channel, cross_border,
               count(*) AS referrals,
               count(*) FILTER (WHERE status IN ('accepted', 'completed')) AS accepted,
               round(count(*) FILTER (WHERE status IN ('accepted', 'completed')) / count(*), 3) AS acceptance_share,
               median(CAST(response_days AS DOUBLE)) AS median_response_days,
               count(DISTINCT person_id) AS persons
        FROM referrals GROUP BY ALL""",
    "cross_border_routes": """
        WITH legs AS (
          SELECT partner, case_id,
                 min(country) FILTER (WHERE event_type = 'recruitment') AS rc,
                 string_agg(country, '>' ORDER BY sequence) FILTER (WHERE event_type = 'transit') AS transit,
                 min(country) FILTER (WHERE event_type = 'exploitation') AS ec
          FROM events WHERE case_id IS NOT NULL GROUP BY partner, case_id),
        linked AS (
          SELECT l.partner, l.case_id, l.rc, coalesce(l.transit, '') AS transit, l.ec, c.person_id
          FROM legs l LEFT JOIN (SELECT DISTINCT partner, case_id, person_id FROM cases WHERE case_id IS NOT NULL) c
            ON c.partner = l.partner AND c.case_id = l.case_id)
        SELECT rc AS recruitment_country, transit, ec AS exploitation_country,
               rc <> ec OR transit <> '' AS cross_border,
               count(DISTINCT partner || '/' || case_id) AS cases, count(DISTINCT person_id) AS persons
        FROM linked GROUP BY ALL""",
    "multi_agency_persons": f"""
        SELECT r.person_id, count(DISTINCT r.partner) AS partners, count(DISTINCT r.reporting_country) AS countries,
               list_sort(list(DISTINCT o.type)) AS agency_types, list_sort(list(DISTINCT r.partner)) AS partner_ids
        FROM ({person_reports}) r JOIN organisations o ON o.org_id = r.partner
        GROUP BY r.person_id HAVING count(DISTINCT r.partner) >= 2""",
    "service_totals": """
        SELECT period AS month, reporting_country AS country, service_type, count(*) AS services,
               sum(sessions) AS sessions, round(sum(hours), 1) AS hours, count(DISTINCT person_id) AS persons,
               count(*) FILTER (WHERE person_id IS NULL) AS unlinked_services
        FROM services GROUP BY ALL""",
    "outcome_trajectories": """
        WITH o AS (
          SELECT person_id, assessed_on, risk_level,
                 CASE risk_level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END AS rank,
                 row_number() OVER (PARTITION BY person_id ORDER BY assessed_on, partner, source_row) AS n_first,
                 row_number() OVER (PARTITION BY person_id ORDER BY assessed_on DESC, partner DESC, source_row DESC) AS n_last,
                 count(*) OVER (PARTITION BY person_id) AS assessments
          FROM outcomes WHERE person_id IS NOT NULL)
        SELECT f.person_id, f.assessed_on, f.risk_level, l.assessed_on, l.risk_level, f.assessments,
               (year(l.assessed_on) - year(f.assessed_on)) * 12 + month(l.assessed_on) - month(f.assessed_on),
               CASE WHEN l.rank < f.rank THEN 'improved' WHEN l.rank > f.rank THEN 'worsened' ELSE 'unchanged' END
        FROM o f JOIN o l ON l.person_id = f.person_id AND l.n_last = 1 WHERE f.n_first = 1""",
    "country_profiles": """
        WITH c AS (SELECT year(registered_on) AS year, reporting_country AS country, person_id, is_minor, exploitation FROM cases),
        base AS (
          SELECT year, country, count(DISTINCT person_id) AS persons,
                 count(DISTINCT person_id) FILTER (WHERE is_minor) AS minors,
                 count(*) FILTER (WHERE person_id IS NULL) AS unlinked
          FROM c GROUP BY ALL),
        ex AS (
          SELECT year, country, e, count(DISTINCT person_id) AS n
          FROM (SELECT year, country, person_id, unnest(exploitation) AS e FROM c WHERE person_id IS NOT NULL) GROUP BY ALL),
        pop AS (
          SELECT b.year, b.country, p.population, p.year AS py
          FROM base b ASOF JOIN population p ON p.country = b.country AND p.year <= b.year)
        SELECT b.year, b.country, b.persons, b.minors, round(b.minors / nullif(b.persons, 0), 3),
               (SELECT e FROM ex WHERE ex.year = b.year AND ex.country = b.country ORDER BY n DESC, e LIMIT 1),
               p.population, p.py, round(b.persons * 100000 / p.population, 3), b.unlinked
        FROM base b LEFT JOIN pop p ON p.year = b.year AND p.country = b.country""",
}

def text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ";".join(text(x) for x in v)
    if isinstance(v, (datetime.date,)):
        return v.isoformat()
    return str(v)

def main():
    export, population_csv, view = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = connect(export, population_csv).execute(QUERIES[view]).fetchall()
    w = csv.writer(sys.stdout, lineterminator="\n")
    for r in rows:
        w.writerow([text(v) for v in r])

if __name__ == "__main__":
    main()
