-- information_streams: referrals and other information passed between organisations, by sending
-- organisation, its type and country → receiving organisation, its type and country × kind ×
-- channel. referrals counts events; accepted counts those accepted or completed;
-- acceptance_share = accepted / referrals; median_response_days is over the referrals that were
-- answered; persons counts distinct linked persons. Types and countries come from the registry.
CREATE VIEW information_streams AS
SELECT from_org, from_org_type, from_country, to_org, to_org_type, to_country, kind, channel, cross_border,
       count(*) AS referrals,
       count(*) FILTER (WHERE status IN ('accepted', 'completed')) AS accepted,
       round(CAST(count(*) FILTER (WHERE status IN ('accepted', 'completed')) AS DOUBLE) / count(*), 3) AS acceptance_share,
       median(CAST(response_days AS DOUBLE)) AS median_response_days,
       count(DISTINCT person_id) AS persons
FROM referrals
GROUP BY from_org, from_org_type, from_country, to_org, to_org_type, to_country, kind, channel, cross_border
