-- multi_agency_persons: persons known to two or more partners (from any record type), with the
-- number of partners and countries and the kinds of agency that know them (from the registry).
CREATE VIEW multi_agency_persons AS
SELECT r.person_id,
       count(DISTINCT r.partner) AS partners,
       count(DISTINCT r.reporting_country) AS countries,
       array_sort(array_agg(DISTINCT o.type)) AS agency_types,
       array_sort(array_agg(DISTINCT r.partner)) AS partner_ids
FROM person_reports r
JOIN organisations o ON o.org_id = r.partner
GROUP BY r.person_id
HAVING count(DISTINCT r.partner) >= 2
