-- AWS's published CloudTrail Lake sample queries, written out unchanged
-- but for the store: event_data_store_ID, eds-ID, $EDS_ID, EDS1..EDS3, eds1
-- and eds2 stand for the test's store ID. Each query: a "-- name:" line, a
-- "-- source:" line (the page of AWS's documentation it is from), the SQL,
-- and a line ";;". Run by TestAWSSampleQueries against the real records of
-- ../shared/testdata/real; queries that cannot run are listed with the
-- reason in docs/compatibility.md ("Lake sample queries").

-- name: principal-ids-createbucket
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-lake-examples.html#query-example-principal-ids
SELECT 
    userIdentity.principalid, 
    eventName 
FROM 
    event_data_store_ID
WHERE 
    userIdentity.principalid IS NOT NULL 
AND 
    eventTime > '2023-01-22 00:00:00' 
AND 
    eventTime < '2023-01-23 00:00:00' 
AND 
    eventName='CreateBucket'
;;
-- name: user-called-apis
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-lake-examples.html#query-example-user-called-apis
SELECT 
    eventID, 
    eventName, 
    eventSource, 
    eventTime
FROM 
    event_data_store_ID
WHERE 
    userIdentity.username = 'bob' 
AND 
    eventTime > '2023-01-22 00:00:00' 
AND 
    eventTime < '2023-01-23 00:00:00'
;;
-- name: apis-by-eventname-eventsource
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-lake-examples.html#query-example-apis-eventname-eventsource
SELECT 
    eventSource, 
    eventName, 
    COUNT(*) AS apiCount
FROM 
    event_data_store_ID
WHERE 
    eventTime > '2023-01-01 00:00:00' 
GROUP BY 
    eventSource, eventName 
ORDER BY 
    apiCount DESC
;;
-- name: console-logins-in-regions
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-lake-examples.html#query-example-users-login-regions
SELECT 
    eventTime, 
    useridentity.arn, 
    awsRegion
FROM 
    event_data_store_ID
WHERE 
    awsRegion in ('us-east-1', 'us-west-2') 
AND
    eventName = 'ConsoleLogin'
;;
-- name: lake-queries-january-2023
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-lake-examples.html#query-example-all-queries
SELECT 
    element_at(responseElements, 'queryId'), 
    element_at(requestParameters, 'queryStatement')
FROM 
    event_data_store_ID
WHERE 
    eventName='StartQuery' 
AND 
    eventSource = 'cloudtrail.amazonaws.com' 
AND 
    responseElements IS NOT NULL
AND 
    eventTime > '2023-01-01 00:00:00' 
AND 
    eventTime < '2023-02-01 00:00:00'
;;
-- name: bounded-select-star
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-lake-queries.html
SELECT *
FROM eds-ID
WHERE
     eventtime >='2023-01-05 13:51:00' and eventtime < ='2023-01-19 13:51:00'
;;
-- name: multi-table-union
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-limitations.html#query-multi-table-union
Select eventId, eventName from EDS1
UNION
Select eventId, eventName from EDS2
UNION ALL
Select eventId, eventName from EDS3 
ORDER BY eventId LIMIT 10;
;;
-- name: multi-table-left-join
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/query-limitations.html#query-multi-table-left-right
SELECT edsA.eventName, edsB.eventName, element_at(edsA.map, 'test')
FROM eds1 as edsA 
LEFT JOIN eds2 as edsB
ON edsA.eventId = edsB.eventId 
WHERE edsA.eventtime <= '2020-01-01'
ORDER BY edsB.eventName;
;;
-- name: optimize-aggregation-arbitrary
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/lake-queries-optimization.html#query-optimization-aggregation
SELECT eventName, eventSource, arbitrary(eventType), count(*) 
FROM $EDS_ID 
GROUP BY eventName, eventSource
;;
-- name: optimize-aggregation-group-order
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/lake-queries-optimization.html#query-optimization-aggregation
SELECT eventName, awsRegion, count(*) 
FROM $EDS_ID 
GROUP BY eventName, awsRegion
;;
-- name: optimize-limit
-- source: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/lake-queries-optimization.html#query-optimization-limit
SELECT * FROM $EDS_ID ORDER BY eventTime LIMIT 100;
;;
