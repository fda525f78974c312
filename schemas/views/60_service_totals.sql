-- service_totals: services delivered by month × reporting country × service type: service
-- records, sessions, hours and distinct linked persons served. unlinked_services counts records
-- without a person_id.
CREATE VIEW service_totals AS
SELECT period AS month, reporting_country AS country, service_type,
       count(*) AS services,
       sum(sessions) AS sessions,
       round(sum(hours), 1) AS hours,
       count(DISTINCT person_id) AS persons,
       count(*) FILTER (WHERE person_id IS NULL) AS unlinked_services
FROM services
GROUP BY period, reporting_country, service_type
