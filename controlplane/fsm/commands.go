package fsm

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// handler applies one command type. A handler checks everything that can
// fail before it writes, so a refused command leaves no partial write in the
// batch's transaction.
type handler struct {
	version uint32 // the newest payload version this server understands
	newMsg  func() proto.Message
	apply   func(tx *txn, at time.Time, msg proto.Message) error
}

var handlers = map[statev1.CommandType]handler{
	statev1.CommandType_COMMAND_TYPE_CREATE_VOLUME: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CreateVolume{} },
		apply:   applyCreateVolume,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_VOLUME: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveVolume{} },
		apply:   applyRemoveVolume,
	},
	statev1.CommandType_COMMAND_TYPE_RECORD_EXEC: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RecordExec{} },
		// An exec changes no state: the command is its audit record.
		apply: func(*txn, time.Time, proto.Message) error { return nil },
	},
	statev1.CommandType_COMMAND_TYPE_ROTATE_CA: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RotateCA{} },
		apply:   applyRotateCA,
	},
	statev1.CommandType_COMMAND_TYPE_RETIRE_CA: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RetireCA{} },
		apply:   applyRetireCA,
	},
	statev1.CommandType_COMMAND_TYPE_NODE_CERT: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.NodeCert{} },
		apply:   applyNodeCert,
	},
	statev1.CommandType_COMMAND_TYPE_INIT_CLUSTER: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.InitCluster{} },
		apply:   applyInitCluster,
	},
	statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CreateToken{} },
		apply:   applyCreateToken,
	},
	statev1.CommandType_COMMAND_TYPE_REVOKE_TOKEN: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RevokeToken{} },
		apply:   applyRevokeToken,
	},
	statev1.CommandType_COMMAND_TYPE_JOIN_NODE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.JoinNode{} },
		apply:   applyJoinNode,
	},
	statev1.CommandType_COMMAND_TYPE_UPDATE_NODE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.UpdateNode{} },
		apply:   applyUpdateNode,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_NODE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveNode{} },
		apply:   applyRemoveNode,
	},
	statev1.CommandType_COMMAND_TYPE_CREATE_CONTAINER: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CreateContainer{} },
		apply:   applyCreateContainer,
	},
	statev1.CommandType_COMMAND_TYPE_SET_CONTAINER_DESIRED: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.SetContainerDesired{} },
		apply:   applySetContainerDesired,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_CONTAINER: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveContainer{} },
		apply:   applyRemoveContainer,
	},
	statev1.CommandType_COMMAND_TYPE_REPORT_STATUS: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ReportStatus{} },
		apply:   applyReportStatus,
	},
	statev1.CommandType_COMMAND_TYPE_REPORT_STATUSES: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ReportStatuses{} },
		apply:   applyReportStatuses,
	},
	statev1.CommandType_COMMAND_TYPE_RECORD_ATTEMPT_UPLOAD: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RecordAttemptUpload{} },
		apply:   applyRecordAttemptUpload,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_IMAGE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutImage{} },
		apply:   applyPutImage,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_SERVER: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutServer{} },
		apply:   applyPutServer,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_SERVER: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveServer{} },
		apply:   applyRemoveServer,
	},
	statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CreateService{} },
		apply:   applyCreateService,
	},
	statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.UpdateService{} },
		apply:   applyUpdateService,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveService{} },
		apply:   applyRemoveService,
	},
	statev1.CommandType_COMMAND_TYPE_TASK_OPS: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.TaskOps{} },
		apply:   applyTaskOps,
	},
	statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.UpdateSettings{} },
		apply:   applyUpdateSettings,
	},
	statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.SubmitJob{} },
		apply:   applySubmitJob,
	},
	statev1.CommandType_COMMAND_TYPE_CANCEL_JOB: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CancelJob{} },
		apply:   applyCancelJob,
	},
	statev1.CommandType_COMMAND_TYPE_JOB_OPS: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.JobOps{} },
		apply:   applyJobOps,
	},
	statev1.CommandType_COMMAND_TYPE_SET_QUEUE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.SetQueue{} },
		apply:   applySetQueue,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_INPUT: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutInput{} },
		apply:   applyPutInput,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_IMAGE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveImage{} },
		apply:   applyRemoveImage,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_ROUTE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutRoute{} },
		apply:   applyPutRoute,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_ROUTE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveRoute{} },
		apply:   applyRemoveRoute,
	},
	statev1.CommandType_COMMAND_TYPE_APPLY_ROUTES: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ApplyRoutes{} },
		apply:   applyApplyRoutes,
	},
	statev1.CommandType_COMMAND_TYPE_DEPLOY_SITE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.DeploySite{} },
		apply:   applyDeploySite,
	},
	statev1.CommandType_COMMAND_TYPE_ROLLBACK_SITE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RollbackSite{} },
		apply:   applyRollbackSite,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_SITE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveSite{} },
		apply:   applyRemoveSite,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_CERT: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutCert{} },
		apply:   applyPutCert,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_CERT: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveCert{} },
		apply:   applyRemoveCert,
	},
	statev1.CommandType_COMMAND_TYPE_CERT_STATUS: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.CertStatus{} },
		apply:   applyCertStatus,
	},
	statev1.CommandType_COMMAND_TYPE_ACME_STORE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ACMEStore{} },
		apply:   applyACMEStore,
	},
	statev1.CommandType_COMMAND_TYPE_ACME_DELETE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ACMEDelete{} },
		apply:   applyACMEDelete,
	},
	statev1.CommandType_COMMAND_TYPE_ACME_LOCK: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ACMELock{} },
		apply:   applyACMELock,
	},
	statev1.CommandType_COMMAND_TYPE_ACME_UNLOCK: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.ACMEUnlock{} },
		apply:   applyACMEUnlock,
	},
	statev1.CommandType_COMMAND_TYPE_PUT_CHALLENGE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.PutChallenge{} },
		apply:   applyPutChallenge,
	},
	statev1.CommandType_COMMAND_TYPE_REMOVE_CHALLENGE: {
		version: 1,
		newMsg:  func() proto.Message { return &statev1.RemoveChallenge{} },
		apply:   applyRemoveChallenge,
	},
}

// Encode builds the raft log entry for a command: its type, the current
// version of that type, the proposer's clock and the payload.
func Encode(t statev1.CommandType, payload proto.Message, now time.Time) ([]byte, error) {
	return EncodeAudited(t, payload, now, nil)
}

// EncodeAudited is Encode with the audit context of the API call that
// proposes the command (nil: not audited); applying the entry writes its
// audit record.
func EncodeAudited(t statev1.CommandType, payload proto.Message, now time.Time, audit *statev1.AuditContext) ([]byte, error) {
	return EncodeTraced(t, payload, now, audit, nil)
}

// EncodeTraced is EncodeAudited with the W3C trace context of the span
// that proposes the command (nil: none): its apply span continues that
// trace, and the records it creates keep it.
func EncodeTraced(t statev1.CommandType, payload proto.Message, now time.Time, audit *statev1.AuditContext, traceContext map[string]string) ([]byte, error) {
	h, ok := handlers[t]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnknownCommand, t)
	}
	body, err := proto.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %v: %w", t, err)
	}
	return proto.Marshal(&statev1.Command{Type: t, Version: h.version, IssuedAt: ts(now), Payload: body, Audit: audit, TraceContext: traceContext})
}

func applyCommand(tx *txn, data []byte) (statev1.CommandType, error) {
	var cmd statev1.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		return 0, fmt.Errorf("%w: undecodable entry: %v", ErrInvalid, err)
	}
	end := tx.traceApply(&cmd)
	tx.trace = cmd.TraceContext
	err := applyDecoded(tx, &cmd)
	tx.trace = nil
	defer func() { end(err) }()
	if cmd.Audit != nil && cmd.IssuedAt != nil {
		// In the same transaction, after the command: a refused command
		// wrote nothing (handlers check before they write), its record
		// is written all the same.
		if aerr := recordAudit(tx, &cmd, err); aerr != nil {
			return cmd.Type, fmt.Errorf("write audit record: %w", aerr)
		}
	}
	return cmd.Type, err
}

func applyDecoded(tx *txn, cmd *statev1.Command) error {
	h, ok := handlers[cmd.Type]
	if !ok {
		return fmt.Errorf("%w %d: this server does not know it; upgrade it to the version of the leader", ErrUnknownCommand, int32(cmd.Type))
	}
	if cmd.Version == 0 || cmd.Version > h.version {
		return fmt.Errorf("%w: %v version %d, this server understands up to %d; upgrade it", ErrUnsupportedVersion, cmd.Type, cmd.Version, h.version)
	}
	if cmd.IssuedAt == nil {
		return fmt.Errorf("%w: %v has no issue time", ErrInvalid, cmd.Type)
	}
	msg := h.newMsg()
	if err := proto.Unmarshal(cmd.Payload, msg); err != nil {
		return fmt.Errorf("%w: %v payload: %v", ErrInvalid, cmd.Type, err)
	}
	return h.apply(tx, cmd.IssuedAt.AsTime(), msg)
}

func applyInitCluster(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.InitCluster)
	if m.ClusterId == "" || len(m.CaCertPem) == 0 || len(m.CaKeyPem) == 0 {
		return fmt.Errorf("%w: init cluster needs a cluster id, a CA certificate and a CA key", ErrInvalid)
	}
	b := tx.Bucket(bucketCluster)
	if b.Get(keyCluster) != nil {
		return fmt.Errorf("cluster %w", ErrExists)
	}
	return put(b, string(keyCluster), &statev1.ClusterRecord{
		ClusterId: m.ClusterId,
		CaCertPem: m.CaCertPem,
		CaKeyPem:  m.CaKeyPem,
		CreatedAt: ts(at),
	})
}

func applyCreateToken(tx *txn, at time.Time, msg proto.Message) error {
	t := msg.(*statev1.CreateToken).GetToken()
	switch {
	case t == nil || t.Id == "":
		return fmt.Errorf("%w: token needs an id", ErrInvalid)
	case len(t.SecretSha256) != 32:
		return fmt.Errorf("%w: token %s needs a 32-byte secret hash", ErrInvalid, t.Id)
	case ccv1.Role(t.Role) != ccv1.Role_ROLE_ADMIN && ccv1.Role(t.Role) != ccv1.Role_ROLE_VIEWER && ccv1.Role(t.Role) != ccv1.Role_ROLE_AGENT && ccv1.Role(t.Role) != ccv1.Role_ROLE_SERVER && ccv1.Role(t.Role) != ccv1.Role_ROLE_JOBS && ccv1.Role(t.Role) != ccv1.Role_ROLE_METRICS:
		return fmt.Errorf("%w: token %s has unknown role %d", ErrInvalid, t.Id, t.Role)
	}
	b := tx.Bucket(bucketTokens)
	if b.Get([]byte(t.Id)) != nil {
		return fmt.Errorf("token %s %w", t.Id, ErrExists)
	}
	rec := proto.Clone(t).(*statev1.TokenRecord)
	rec.CreatedAt = ts(at)
	rec.Revoked = false
	rec.Uses = 0
	return put(b, rec.Id, rec)
}

func applyRevokeToken(tx *txn, _ time.Time, msg proto.Message) error {
	id := msg.(*statev1.RevokeToken).GetId()
	b := tx.Bucket(bucketTokens)
	var rec statev1.TokenRecord
	if err := get(b, id, &rec); err != nil {
		return fmt.Errorf("token %s: %w", id, err)
	}
	if rec.Revoked {
		return nil
	}
	rec.Revoked = true
	return put(b, id, &rec)
}
