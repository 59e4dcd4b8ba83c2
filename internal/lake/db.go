// Package lake is cairn's CloudTrail Lake: event data stores fed from the
// event store's append feed and from channels (PutAuditEvents), queried with
// Lake SQL run by DuckDB over Lake's column names and nested fields.
//
// Lake keeps its own DuckDB database (DIR/lake.duckdb): one table, events,
// holding every store's events with the store's ID in eds_id and Lake's
// columns (userIdentity as a STRUCT, requestParameters as a MAP of strings,
// eventTime as a TIMESTAMP...) parsed once at ingestion from the record's
// unchanged JSON, kept in eventJson. The database runs with
// enable_external_access=false, no extension loading and a locked
// configuration, so a query cannot read files or attach databases even if
// the statement check missed something.
package lake

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// structure is the from_json structure of a record: the JSON keys exactly
// as CloudTrail spells them (DuckDB matches keys case-sensitively, but
// column and field references in queries case-insensitively, so
// useridentity.arn and userIdentity.arn both work).
const structure = `{
 "eventVersion":"VARCHAR",
 "userIdentity":{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR","accessKeyId":"VARCHAR","userName":"VARCHAR",
   "sessionContext":{"attributes":{"creationDate":"VARCHAR","mfaAuthenticated":"VARCHAR"},
     "sessionIssuer":{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR","userName":"VARCHAR"},
     "webIdFederationData":{"federatedProvider":"VARCHAR","attributes":"MAP(VARCHAR, VARCHAR)"},
     "sourceIdentity":"VARCHAR","ec2RoleDelivery":"VARCHAR","ec2IssuedInVPC":"VARCHAR"},
   "invokedBy":"VARCHAR","identityProvider":"VARCHAR","details":"MAP(VARCHAR, VARCHAR)"},
 "eventTime":"VARCHAR",
 "eventSource":"VARCHAR","eventName":"VARCHAR","awsRegion":"VARCHAR","sourceIPAddress":"VARCHAR","userAgent":"VARCHAR",
 "errorCode":"VARCHAR","errorMessage":"VARCHAR",
 "requestParameters":"MAP(VARCHAR, VARCHAR)","responseElements":"MAP(VARCHAR, VARCHAR)","additionalEventData":"MAP(VARCHAR, VARCHAR)",
 "requestID":"VARCHAR","eventID":"VARCHAR","readOnly":"BOOLEAN",
 "resources":[{"accountId":"VARCHAR","type":"VARCHAR","ARN":"VARCHAR","arnPrefix":"VARCHAR"}],
 "eventType":"VARCHAR","apiVersion":"VARCHAR","managementEvent":"BOOLEAN","recipientAccountId":"VARCHAR",
 "sharedEventID":"VARCHAR","annotation":"VARCHAR","vpcEndpointId":"VARCHAR",
 "serviceEventDetails":"MAP(VARCHAR, VARCHAR)","addendum":"MAP(VARCHAR, VARCHAR)","edgeDeviceDetails":"MAP(VARCHAR, VARCHAR)",
 "insightDetails":"MAP(VARCHAR, VARCHAR)",
 "eventCategory":"VARCHAR",
 "tlsDetails":{"tlsVersion":"VARCHAR","cipherSuite":"VARCHAR","clientProvidedHostHeader":"VARCHAR"},
 "sessionCredentialFromConsole":"VARCHAR",
 "metadata":{"ingestionTime":"VARCHAR","channelARN":"VARCHAR"},
 "eventData":{"version":"VARCHAR","userIdentity":{"type":"VARCHAR","principalId":"VARCHAR","details":"MAP(VARCHAR, VARCHAR)"},
   "userAgent":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR","eventTime":"VARCHAR","UID":"VARCHAR",
   "requestParameters":"MAP(VARCHAR, VARCHAR)","responseElements":"MAP(VARCHAR, VARCHAR)","errorCode":"VARCHAR","errorMessage":"VARCHAR",
   "sourceIPAddress":"VARCHAR","recipientAccountId":"VARCHAR","additionalEventData":"MAP(VARCHAR, VARCHAR)"}
}`

// projection turns staging rows (eds_id, raw) into events rows. eventTime
// becomes a TIMESTAMP (UTC, as Lake compares it with '2024-01-01 00:00:00').
func projection() string {
	return `SELECT eds_id, * REPLACE (try_strptime(eventTime, ['%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%dT%H:%M:%S']) AS eventTime), raw AS eventJson
 FROM (SELECT eds_id, raw, unnest(from_json(raw, ` + quote(structure) + `)) FROM lake_staging)`
}

const schema = `
CREATE TABLE IF NOT EXISTS lake_meta (k VARCHAR PRIMARY KEY, v BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS lake_staging (eds_id VARCHAR NOT NULL, raw VARCHAR NOT NULL);
`

// quote returns s as a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// openDB opens the Lake database at path ("" = in memory) with the query
// sandbox settings.
func openDB(path string, memoryLimit string, threads int) (*sql.DB, *duckdb.Connector, error) {
	if strings.ContainsAny(path, "?\x00") {
		return nil, nil, fmt.Errorf("lake: unusable database path %q", path)
	}
	dsn := path + "?enable_external_access=false&autoinstall_known_extensions=false&autoload_known_extensions=false" +
		"&allow_community_extensions=false&memory_limit=" + memoryLimit
	if threads > 0 {
		dsn += fmt.Sprintf("&threads=%d", threads)
	}
	connector, err := duckdb.NewConnector(dsn, func(ex driver.ExecerContext) error {
		_, err := ex.ExecContext(context.Background(), "SET lock_configuration = true", nil)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lake: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, schema+macros); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("lake: schema: %w", err)
	}
	// The events table's columns are exactly what the projection yields.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS events AS `+projection()+` LIMIT 0`); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("lake: events table: %w", err)
	}
	return db, connector, nil
}
