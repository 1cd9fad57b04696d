package fsm_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func auditedCmd(t *testing.T, typ statev1.CommandType, msg proto.Message, at time.Time, who string) []byte {
	t.Helper()
	data, err := fsm.EncodeAudited(typ, msg, at, &statev1.AuditContext{
		TokenId: who, Role: int32(ccv1.Role_ROLE_ADMIN), Method: ccv1.TokenService_CreateToken_FullMethodName,
		Target: "target-" + who, Source: "192.0.2.7", Server: "s1",
	})
	if err != nil {
		t.Fatalf("EncodeAudited: %v", err)
	}
	return data
}

func auditedCreate(t *testing.T, id string, at time.Time, who string) []byte {
	return auditedCmd(t, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: tokenRec(id, ccv1.Role_ROLE_VIEWER)}, at, who)
}

// An audited command and its audit record are written by the same batch
// transaction; a refused command is recorded with its error; a command
// without an audit context writes none.
func TestAuditRecordedWithCommand(t *testing.T) {
	f := newFSM(t)
	var hooked []*ccv1.AuditEvent
	f.OnAudit(func(evs []*ccv1.AuditEvent) { hooked = append(hooked, evs...) })
	res := f.ApplyBatch([]*raft.Log{
		entry(1, auditedCreate(t, "tok1", t0, "adm")),
		entry(2, auditedCreate(t, "tok1", t0.Add(time.Second), "adm")), // duplicate: refused
		entry(3, createCmd(t, "tok2")),                                 // not audited
	})
	if err := asResult(t, res[1], 2).Err; !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("duplicate create: err = %v, want ErrExists", err)
	}
	if _, err := f.Token("tok1"); err != nil {
		t.Fatalf("Token(tok1): %v", err)
	}
	evs, next, err := f.Audit(fsm.AuditFilter{}, 0, 10)
	if err != nil || next != 0 {
		t.Fatalf("Audit() = %v, next %d, %v", evs, next, err)
	}
	if len(evs) != 2 {
		t.Fatalf("Audit() = %d events, want 2 (newest first): %v", len(evs), evs)
	}
	refused, ok := evs[0], evs[1]
	if ok.Index != 1 || ok.Outcome != fsm.AuditOK || ok.Error != "" || ok.TokenId != "adm" || ok.Role != ccv1.Role_ROLE_ADMIN ||
		ok.Method != ccv1.TokenService_CreateToken_FullMethodName || ok.Target != "target-adm" || ok.Source != "192.0.2.7" ||
		ok.Server != "s1" || !ok.Time.AsTime().Equal(t0) {
		t.Errorf("applied command's record = %v", ok)
	}
	if refused.Index != 2 || refused.Outcome != fsm.AuditError || !strings.Contains(refused.Error, "already exists") {
		t.Errorf("refused command's record = %v", refused)
	}
	if len(hooked) != 2 || !proto.Equal(hooked[0], ok) || !proto.Equal(hooked[1], refused) {
		t.Errorf("OnAudit saw %v", hooked)
	}
	// Replaying entries already applied writes nothing again.
	f.Apply(entry(2, auditedCreate(t, "tok1", t0.Add(time.Second), "adm")))
	if evs, _, _ := f.Audit(fsm.AuditFilter{}, 0, 10); len(evs) != 2 || len(hooked) != 2 {
		t.Errorf("after a replay: %d events, %d hooked", len(evs), len(hooked))
	}
}

func TestAuditFilterAndPages(t *testing.T) {
	f := newFSM(t)
	for i := range 6 {
		who := "alice"
		if i%2 == 1 {
			who = "bob"
		}
		mustApply(t, f, uint64(i+1), auditedCreate(t, "tok"+string(rune('a'+i)), t0.Add(time.Duration(i)*time.Minute), who))
	}
	evs, next, err := f.Audit(fsm.AuditFilter{Principal: "bob"}, 0, 2)
	if err != nil || len(evs) != 2 || evs[0].Index != 6 || evs[1].Index != 4 || next != 4 {
		t.Fatalf("bob, page 1 = %v, next %d, %v", evs, next, err)
	}
	evs, next, _ = f.Audit(fsm.AuditFilter{Principal: "bob"}, next, 2)
	if len(evs) != 1 || evs[0].Index != 2 || next != 0 {
		t.Fatalf("bob, page 2 = %v, next %d", evs, next)
	}
	evs, _, _ = f.Audit(fsm.AuditFilter{Since: t0.Add(3 * time.Minute)}, 0, 10)
	if len(evs) != 3 {
		t.Fatalf("since +3m: %d events, want 3", len(evs))
	}
	for _, m := range []string{"CreateToken", "tokenservice/createtoken", "cc.v1.TokenService/CreateToken", ccv1.TokenService_CreateToken_FullMethodName} {
		if evs, _, _ := f.Audit(fsm.AuditFilter{Method: m}, 0, 10); len(evs) != 6 {
			t.Errorf("method %q: %d events, want 6", m, len(evs))
		}
	}
	if evs, _, _ := f.Audit(fsm.AuditFilter{Method: "SubmitJob"}, 0, 10); len(evs) != 0 {
		t.Errorf("method SubmitJob: %d events", len(evs))
	}
	evs, last, err := f.AuditAfter(fsm.AuditFilter{Principal: "alice"}, 2, 10)
	if err != nil || len(evs) != 2 || evs[0].Index != 3 || evs[1].Index != 5 || last != 6 {
		t.Fatalf("AuditAfter(2) = %v, last %d, %v", evs, last, err)
	}
	if idx, _ := f.LastAuditIndex(); idx != 6 {
		t.Errorf("LastAuditIndex = %d", idx)
	}
}

// Retention drops the oldest records beyond the count and those older than
// the age, deterministically, when a record is written.
func TestAuditRetention(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, encode(t, statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{
		Audit: &ccv1.AuditSettings{MaxEvents: proto.Int64(3)},
	}}, t0))
	for i := range 5 {
		mustApply(t, f, uint64(i+2), auditedCreate(t, "t"+string(rune('a'+i)), t0.Add(time.Duration(i)*time.Minute), "adm"))
	}
	evs, _, _ := f.Audit(fsm.AuditFilter{}, 0, 10)
	if len(evs) != 3 || evs[2].Index != 4 {
		t.Fatalf("max_events 3: %v", evs)
	}
	// An age: the update keeps max_events (merge), and the next record
	// two hours on drops all but itself and the one 90 minutes old.
	mustApply(t, f, 7, encode(t, statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{
		Audit: &ccv1.AuditSettings{MaxAge: durationpb.New(time.Hour)},
	}}, t0))
	st, err := f.Settings()
	if err != nil || st.GetAudit().GetMaxEvents() != 3 || st.GetAudit().GetMaxAge().AsDuration() != time.Hour {
		t.Fatalf("settings after merge = %v, %v", st.GetAudit(), err)
	}
	mustApply(t, f, 8, auditedCreate(t, "old-enough", t0.Add(5*time.Minute+30*time.Minute), "adm"))
	mustApply(t, f, 9, auditedCreate(t, "late", t0.Add(4*time.Minute+time.Hour+time.Second), "adm"))
	evs, _, _ = f.Audit(fsm.AuditFilter{}, 0, 10)
	if len(evs) != 2 || evs[0].Index != 9 || evs[1].Index != 8 {
		t.Fatalf("max_age 1h: %v", evs)
	}
	if err := apply(t, f, 10, encode(t, statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{
		Audit: &ccv1.AuditSettings{MaxEvents: proto.Int64(-1)},
	}}, t0)); !errors.Is(err, fsm.ErrInvalid) {
		t.Errorf("negative max_events: %v", err)
	}
}
