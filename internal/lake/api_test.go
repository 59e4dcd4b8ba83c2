package lake_test

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
	"github.com/cairn-audit/cairn/internal/sigv4"
)

// The tests of package lake drive a Lake through the API edge, which
// imports lake: it is built here, in the external test package.
func init() {
	lake.NewTestAPI = func(l *lake.Lake, st *audittest.MemStore, keys map[string]string) http.Handler {
		secret := func(id string) (string, bool) {
			if _, ok := keys[id]; ok {
				return "secret" + id, true
			}
			return "", false
		}
		handlers := apiserver.LakeHandlers(l)
		maps.Copy(handlers, apiserver.TagHandlers(nil, l))
		return apiserver.New(apiserver.Config{Auth: auth{&sigv4.Verifier{Secret: secret}, keys}, History: st, Recorder: recorder{st},
			TokenKey: []byte("0123456789abcdef0123456789abcdef"), Handlers: handlers, DataHandlers: apiserver.LakeDataHandlers(l)})
	}
}

type auth struct {
	v    *sigv4.Verifier
	keys map[string]string
}

func (a auth) Authenticate(r *http.Request, body []byte) (apiserver.Caller, error) {
	res, err := a.v.Verify(r, body)
	if err != nil {
		var se *sigv4.Error
		if errors.As(err, &se) {
			return apiserver.Caller{}, &awsjson.Error{Code: se.Code, Message: se.Message, Status: se.Status}
		}
		return apiserver.Caller{}, err
	}
	acct := a.keys[res.AccessKeyID]
	return apiserver.Caller{Principal: audit.Principal{AccountID: acct, UserName: "u", ARN: "arn:aws:iam::" + acct + ":user/u", AccessKeyID: res.AccessKeyID, Region: res.Region}, Service: res.Service}, nil
}

type recorder struct{ st *audittest.MemStore }

func (s recorder) Submit(ctx context.Context, rs ...audit.Record) (audit.AppendResult, error) {
	return s.st.Append(ctx, rs)
}
func (s recorder) Enqueue(ctx context.Context, rs ...audit.Record) error {
	_, err := s.st.Append(ctx, rs)
	return err
}
func (s recorder) Commit(ctx context.Context, rs ...audit.Record) error {
	_, err := s.st.Append(ctx, rs)
	return err
}
func (recorder) Saturated() bool { return false }

// Admit is the Recorder method of the edge's per-account admission (on
// main beside this branch); with Saturated, the recorder fits either.
func (recorder) Admit(string, bool) (func(), error) { return func() {}, nil }
