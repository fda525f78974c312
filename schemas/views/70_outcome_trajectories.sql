-- outcome_trajectories: per linked child with risk assessments: the first and the latest risk
-- level (by date; same-day assessments ordered by partner and row), the number of assessments,
-- the months between first and latest, and the change: improved, worsened or unchanged
-- (high > medium > low > none). Assessments without a person_id cannot be followed across
-- partners and are not here.
CREATE VIEW outcome_trajectories AS
WITH o AS (
  SELECT person_id, assessed_on, risk_level,
         CASE risk_level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END AS rank,
         row_number() OVER (PARTITION BY person_id ORDER BY assessed_on, partner, source_row) AS n_first,
         row_number() OVER (PARTITION BY person_id ORDER BY assessed_on DESC, partner DESC, source_row DESC) AS n_last,
         count(*) OVER (PARTITION BY person_id) AS assessments
  FROM outcomes
  WHERE person_id IS NOT NULL
)
SELECT f.person_id,
       f.assessed_on AS first_assessed, f.risk_level AS first_risk,
       l.assessed_on AS latest_assessed, l.risk_level AS latest_risk,
       f.assessments,
       CAST((date_part('year', l.assessed_on) - date_part('year', f.assessed_on)) * 12
            + date_part('month', l.assessed_on) - date_part('month', f.assessed_on) AS INT) AS months_followed,
       CASE WHEN l.rank < f.rank THEN 'improved' WHEN l.rank > f.rank THEN 'worsened' ELSE 'unchanged' END AS change
FROM o f JOIN o l ON l.person_id = f.person_id AND l.n_last = 1
WHERE f.n_first = 1
