-- person_reports: every report that names a linkable person, from every record type: one row
-- per case, service, referral or risk assessment with a person_id. The building block of the
-- person-level views. Reports without a name or birth date have no person_id and are not here.
-- Columns: person_id, record_type, partner, reporting_country, on_date.
CREATE VIEW person_reports AS
SELECT person_id, 'case' AS record_type, partner, reporting_country, registered_on AS on_date FROM cases WHERE person_id IS NOT NULL
UNION ALL
SELECT person_id, 'service', partner, reporting_country, service_date FROM services WHERE person_id IS NOT NULL
UNION ALL
SELECT person_id, 'referral', partner, reporting_country, sent_on FROM referrals WHERE person_id IS NOT NULL
UNION ALL
SELECT person_id, 'outcome', partner, reporting_country, assessed_on FROM outcomes WHERE person_id IS NOT NULL
