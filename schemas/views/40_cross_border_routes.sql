-- cross_border_routes: routes reconstructed from route events, per case: country of recruitment
-- → transit countries in order ('' when none) → country of exploitation. cases counts
-- partner cases with that route; persons counts distinct persons linked through the partner's
-- case register (a case without a case report, or without a name there, adds to cases only).
CREATE VIEW cross_border_routes AS
WITH legs AS (
  SELECT partner, case_id,
         min(CASE WHEN event_type = 'recruitment' THEN country END) AS recruitment_country,
         -- Transit legs in order of their number (1 to 100; unnumbered legs last, then by
         -- country): each leg prefixed with its zero-padded number, the list sorted per case,
         -- the numbers taken off. A plain array_agg, which the engine runs in parallel and can
         -- spill, unlike an aggregate with ORDER BY.
         regexp_replace(array_to_string(array_sort(
           array_agg(lpad(CAST(coalesce(sequence, 101) AS VARCHAR), 3, '0') || ':' || country)
             FILTER (WHERE event_type = 'transit')), '>'), '[0-9]{3}:', '', 'g') AS transit,
         min(CASE WHEN event_type = 'exploitation' THEN country END) AS exploitation_country
  FROM events
  WHERE case_id IS NOT NULL
  GROUP BY partner, case_id
), linked AS (
  SELECT l.partner, l.case_id, l.recruitment_country, coalesce(l.transit, '') AS transit,
         l.exploitation_country, c.person_id
  FROM legs l
  LEFT JOIN (SELECT DISTINCT partner, case_id, person_id FROM cases WHERE case_id IS NOT NULL) c
    ON c.partner = l.partner AND c.case_id = l.case_id
)
SELECT recruitment_country, transit, exploitation_country,
       recruitment_country <> exploitation_country OR transit <> '' AS cross_border,
       count(DISTINCT partner || '/' || case_id) AS cases,
       count(DISTINCT person_id) AS persons
FROM linked
GROUP BY recruitment_country, transit, exploitation_country
