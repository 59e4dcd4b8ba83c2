package lake

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// TestIntegerDivisionAsTrino: Lake SQL divides integers as Trino (CloudTrail
// Lake's engine) does, truncating toward zero; a decimal or double operand
// divides exactly; dividing by zero gives no value (Trino: an error), never
// Infinity.
func TestIntegerDivisionAsTrino(t *testing.T) {
	e := newEnv(t)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	cr, err := a.CreateEventDataStore(context.Background(), &cloudtrail.CreateEventDataStoreInput{Name: aws.String("arith")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(cr.EventDataStoreArn)
	id := arn[strings.LastIndex(arn, "/")+1:]
	rows := runQuery(t, a, `SELECT 5 / 2 AS i, -7 / 2 AS neg, 5.0 / 2 AS dec, CAST(5 AS DOUBLE) / 2 AS dbl, (count(*) + 9) / 2 AS agg, 1 / 0 AS zero FROM `+id)
	if len(rows) != 1 {
		t.Fatalf("%d rows; want 1", len(rows))
	}
	for k, want := range map[string]string{"i": "2", "neg": "-3", "dec": "2.5", "dbl": "2.5", "agg": "4", "zero": ""} {
		if got := rows[0][k]; got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
}
