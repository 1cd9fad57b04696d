package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coder/websocket"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// execResult is what an exec answered.
type execResult struct {
	stdout, stderr string
	code           int32
}

// execIn runs start through srv's ExecService with stdin (nil: none,
// closed after it is sent) and returns the output and exit code.
func execIn(ctx context.Context, srv *testcluster.Server, start *ccv1.ExecStart, stdin []byte, more ...*ccv1.ExecRequest) (execResult, error) {
	ex := ccv1.NewExecServiceClient(srv.Conn(""))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := ex.Exec(ctx)
	if err != nil {
		return execResult{}, err
	}
	if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: start}}); err != nil {
		return execResult{}, err
	}
	for _, m := range more {
		if err := st.Send(m); err != nil {
			return execResult{}, err
		}
	}
	if start.Stdin {
		if len(stdin) > 0 {
			if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Stdin{Stdin: stdin}}); err != nil {
				return execResult{}, err
			}
		}
		if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_CloseStdin{CloseStdin: true}}); err != nil {
			return execResult{}, err
		}
	}
	var r execResult
	var out, errb strings.Builder
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return r, errors.New("the stream ended without an exit")
		}
		if err != nil {
			return r, err
		}
		switch x := m.Msg.(type) {
		case *ccv1.ExecResponse_Stdout:
			out.Write(x.Stdout)
		case *ccv1.ExecResponse_Stderr:
			errb.Write(x.Stderr)
		case *ccv1.ExecResponse_Exit:
			r.stdout, r.stderr, r.code = out.String(), errb.String(), x.Exit.Code
			return r, nil
		}
	}
}

func mustExec(t *testing.T, srv *testcluster.Server, start *ccv1.ExecStart, stdin []byte, more ...*ccv1.ExecRequest) execResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := execIn(ctx, srv, start, stdin, more...)
	if err != nil {
		t.Fatalf("exec %v: %v", start.Args, err)
	}
	return r
}

// Exec runs a process in a running container: its stdout and stderr apart
// without a terminal, its exit code, stdin, a terminal with its size and
// resizes, another user, directory and environment; it is refused for a
// stopped container and a viewer token, and each one is in the audit trail.
func TestExec(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	loadDemoImage(t, cl)
	agent := srv.StartAgent("exec-node")
	box := create(t, cl, "box", agent.ID.NodeID, busybox("/bin/busybox", "sleep", "1d"))
	waitState(t, cl, box.Id, "running", running)

	r := mustExec(t, srv, &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "sh", "-c", "echo out; echo err >&2; exit 3"}}, nil)
	if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 3 {
		t.Errorf("exec without a terminal: %+v; want out, err apart and exit 3", r)
	}
	r = mustExec(t, srv, &ccv1.ExecStart{Container: box.Id, Args: []string{"/bin/busybox", "cat"}, Stdin: true}, []byte("through stdin\n"))
	if r.stdout != "through stdin\n" || r.code != 0 {
		t.Errorf("exec with stdin: %+v", r)
	}
	r = mustExec(t, srv, &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "sh", "-c", "id -u; pwd; echo $GREETING"},
		User: "nobody", Workdir: "/tmp", Env: []string{"GREETING=hi"}}, nil)
	if r.stdout != "65534\n/tmp\nhi\n" || r.code != 0 {
		t.Errorf("exec as nobody in /tmp with GREETING: %+v", r)
	}
	// A terminal: its size at start, then after a resize (asked for
	// until it shows: the resize and the typing travel apart).
	if out, code := ttySession(t, srv, "box"); !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "40 120") || !strings.Contains(out, "30 100") || code != 5 {
		t.Errorf("exec with a terminal: exit %d, output %q", code, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := execIn(ctx, srv, &ccv1.ExecStart{Container: "box", Args: []string{"/nonexistent"}}, nil)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec of a missing command: %v; want FailedPrecondition", err)
	}
	_, err = execIn(ctx, srv, &ccv1.ExecStart{Container: "no-such-box", Args: []string{"/bin/busybox", "true"}}, nil)
	if status.Code(err) != codes.NotFound {
		t.Errorf("exec in a missing container: %v; want NotFound", err)
	}

	// Viewers may not.
	tok, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	vst, err := ccv1.NewExecServiceClient(srv.Conn(tok.Secret)).Exec(ctx)
	if err == nil {
		_ = vst.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "true"}}}})
		_, err = vst.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("exec with a viewer token: %v; want PermissionDenied", err)
	}

	// The audit trail has the start and the exit of each.
	audit, err := ccv1.NewAuditServiceClient(srv.Conn("")).ListAudit(ctx, &ccv1.ListAuditRequest{Method: "Exec", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, ev := range audit.Events {
		targets = append(targets, ev.Target)
	}
	all := strings.Join(targets, "\n")
	for _, want := range []string{`box (` + box.Id + `): exec ["/bin/busybox" "sh" "-c" "echo out; echo err >&2; exit 3"] exit 3`, `"cat"] started`, `"/nonexistent"] failed`} {
		if !strings.Contains(all, want) {
			t.Errorf("the audit trail has no %q:\n%s", want, all)
		}
	}

	// Over REST: a WebSocket at /v1/containers/{id}/exec, JSON messages.
	if out, code := wsExec(t, srv, srv.Token, "box"); out != "ws\n" || code != 6 {
		t.Errorf("exec over a WebSocket: exit %d, output %q", code, out)
	}
	if out, code := wsExec(t, srv, tok.Secret, "box"); !strings.Contains(out, `"code":7`) || code != -1 {
		t.Errorf("exec over a WebSocket with a viewer token: exit %d, output %q; want a PermissionDenied error", code, out)
	}

	// A stopped container is refused.
	if _, err := cl.Containers.StopContainer(ctx, &ccv1.StopContainerRequest{Id: box.Id}); err != nil {
		t.Fatal(err)
	}
	waitState(t, cl, box.Id, "exited", exited)
	_, err = execIn(ctx, srv, &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "true"}}, nil)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec in a stopped container: %v; want FailedPrecondition", err)
	}
	remove(t, cl, box.Id)
}

// An exec entered through a server that does not hold the node's session
// is relayed through the one that does; when that server (the leader)
// goes away, the agent fails over and a new exec works; an exec whose
// entry server dies ends with an error, not a hang.
func TestExecThroughFailover(t *testing.T) {
	skipShort(t)
	c := testcluster.StartCluster(t, 3)
	leader := c.Leader()
	cl := leader.Client()
	loadDemoImage(t, cl)
	agent := leader.StartAgent("exec-ha")
	deadline := time.Now().Add(30 * time.Second)
	for len(agent.ID.ServerList()) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	box := create(t, cl, "box", agent.ID.NodeID, busybox("/bin/busybox", "sleep", "1d"))
	waitState(t, cl, box.Id, "running", running)

	follower := c.Followers()[0]
	start := &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "sh", "-c", "tty; exit 7"}, Tty: true}
	r := mustExec(t, follower, start, nil)
	if !strings.Contains(r.stdout, "/dev/pts/") || r.code != 7 {
		t.Errorf("exec through a follower: %+v", r)
	}

	leader.Stop()
	// The agent fails over to a survivor; a new exec through any
	// survivor works once it has.
	var survivors []*testcluster.Server
	for _, s := range c.Servers {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	ok := waitFor(2*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := execIn(ctx, survivors[0], &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "echo", "after"}}, nil)
		return err == nil && r.stdout == "after\n"
	})
	if !ok {
		t.Fatal("no exec worked after the leader stopped")
	}
	r = mustExec(t, survivors[1], &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "sh", "-c", "tty; exit 4"}, Tty: true}, nil)
	if !strings.Contains(r.stdout, "/dev/pts/") || r.code != 4 {
		t.Errorf("exec with a terminal after the failover: %+v", r)
	}

	// The entry server dies during an exec: the caller sees an error.
	entry := survivors[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ex := ccv1.NewExecServiceClient(entry.Conn(""))
	st, err := ex.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: &ccv1.ExecStart{Container: "box", Args: []string{"/bin/busybox", "sh", "-c", "echo up; sleep 600"}}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || string(m.GetStdout()) != "up\n" {
		t.Fatalf("long exec: %v %v", m, err)
	}
	entry.Stop()
	for {
		m, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				t.Fatal("the exec ended without an error when its server stopped")
			}
			break
		}
		if m.GetExit() != nil {
			t.Fatalf("the exec exited (%v) when its server stopped", m.GetExit())
		}
	}
}

// ccctl exec exits with the command's code, ccctl run without -d prints
// the output and exits with the container's code, and ccctl cp copies a
// directory out of a container and back in.
func TestCtlExecRunCp(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	loadDemoImage(t, cl)
	srv.StartAgent("ctl-node")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	env := ctlEnv(t)
	flags := []string{"--addr", srv.Addr(), "--token", srv.Token, "--ca-cert", caFile}
	ctl := func(args ...string) result {
		return run(t, env, ctlBin, append(append([]string{}, flags...), args...)...)
	}

	r := ctl("run", "--name", "hello", demoImage, "--", "/bin/busybox", "echo", "hello")
	if r.code != 0 || r.stdout != "hello\n" {
		t.Errorf("run without -d:\n%s", r)
	}
	r = ctl("run", "--name", "three", demoImage, "--", "/bin/busybox", "sh", "-c", "echo bye >&2; exit 3")
	if r.code != 3 || r.stderr != "bye\n" {
		t.Errorf("run exiting 3:\n%s", r)
	}
	r = ctl("run", "-d", "--name", "box", demoImage, "--", "/bin/busybox", "sleep", "1d")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) == 0 {
		t.Fatalf("run -d:\n%s", r)
	}
	id := strings.TrimSpace(r.stdout)
	// An exec typed right after `run -d` waits for the container to run
	// instead of failing while it is being prepared.
	r = ctl("run", "-d", "--name", "quick", demoImage, "--", "/bin/busybox", "sleep", "1d")
	if r.code != 0 {
		t.Fatalf("run -d:\n%s", r)
	}
	if r = ctl("exec", "quick", "--", "/bin/busybox", "echo", "ready"); r.code != 0 || r.stdout != "ready\n" {
		t.Errorf("exec right after run -d:\n%s", r)
	}
	waitState(t, cl, id, "running", running)

	r = ctl("exec", "box", "--", "/bin/busybox", "sh", "-c", "echo in; exit 3")
	if r.code != 3 || r.stdout != "in\n" {
		t.Errorf("exec exiting 3:\n%s", r)
	}
	r = ctl("exec", "-e", "A=1", "-w", "/etc", "box", "/bin/busybox", "sh", "-c", "echo $A $(pwd)")
	if r.code != 0 || r.stdout != "1 /etc\n" {
		t.Errorf("exec -e -w:\n%s", r)
	}

	// Out: a directory that does not exist here gets the container's.
	dir := t.TempDir()
	r = ctl("cp", "box:/etc", filepath.Join(dir, "etc-copy"))
	if r.code != 0 {
		t.Fatalf("cp out:\n%s", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc-copy", "passwd")); err != nil || !strings.Contains(string(b), "root:") {
		t.Errorf("cp out: etc-copy/passwd: %q %v", b, err)
	}
	// In: a local directory lands inside the container's directory.
	local := filepath.Join(dir, "site")
	if err := os.MkdirAll(filepath.Join(local, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "sub", "index.html"), []byte("<p>hi</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ctl("cp", local, "box:/tmp")
	if r.code != 0 {
		t.Fatalf("cp in:\n%s", r)
	}
	r = ctl("exec", "box", "/bin/busybox", "cat", "/tmp/site/sub/index.html")
	if r.code != 0 || r.stdout != "<p>hi</p>\n" {
		t.Errorf("cp in: the file in the container:\n%s", r)
	}
	// And out again, into an existing directory.
	r = ctl("cp", "box:/tmp/site", dir)
	if r.code != 0 {
		t.Fatalf("cp out into a directory:\n%s", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "site", "sub", "index.html")); err != nil || string(b) != "<p>hi</p>\n" {
		t.Errorf("cp out into a directory: %q %v", b, err)
	}
	ctl("rm", "-f", "box")
}

// ttySession runs a shell on a 120x40 terminal in container, resizes it
// to 100x30, types "stty size" until the new size shows, then exits 5.
func ttySession(t *testing.T, srv *testcluster.Server, container string) (string, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := ccv1.NewExecServiceClient(srv.Conn("")).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *ccv1.ExecRequest) {
		if err := st.Send(m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	typ := func(s string) { send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Stdin{Stdin: []byte(s)}}) }
	send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: &ccv1.ExecStart{Container: container,
		Args: []string{"/bin/busybox", "sh"}, Tty: true, Stdin: true, Size: &ccv1.TerminalSize{Width: 120, Height: 40}}}})
	typ("tty; stty size\n")
	var out strings.Builder
	resized, exiting := false, false
	old := 0 // how many times the old size showed
	for {
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("tty session: %v; output %q", err, out.String())
		}
		if e := m.GetExit(); e != nil {
			return out.String(), e.Code
		}
		out.Write(m.GetStdout())
		switch {
		case exiting:
		case strings.Contains(out.String(), "30 100"):
			typ("exit 5\n")
			exiting = true
		case !resized && strings.Contains(out.String(), "40 120"):
			send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Resize{Resize: &ccv1.TerminalSize{Width: 100, Height: 30}}})
			resized, old = true, 1
			typ("stty size\n")
		case resized && strings.Count(out.String(), "40 120") > old:
			// Asked before the resize took: again.
			old = strings.Count(out.String(), "40 120")
			typ("stty size\n")
		}
	}
}

// wsExec runs `cat; exit 6` over the REST WebSocket with token, typing
// "ws\n" then closing stdin, and returns the stdout (or the error
// message) and the exit code (-1: none).
func wsExec(t *testing.T, srv *testcluster.Server, token, container string) (string, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}}
	conn, resp, err := websocket.Dial(ctx, "wss://"+srv.Addr()+"/v1/containers/"+container+"/exec", &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatalf("dial the exec WebSocket: %v (%v)", err, resp)
	}
	defer conn.CloseNow()
	for _, msg := range []string{
		`{"start": {"args": ["/bin/busybox", "sh", "-c", "cat; exit 6"], "stdin": true}}`,
		`{"stdin": "` + base64.StdEncoding.EncodeToString([]byte("ws\n")) + `"}`,
		`{"close_stdin": true}`,
	} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return out.String(), -1
		}
		var m struct {
			Stdout []byte `json:"stdout"`
			Exit   *struct {
				Code int32 `json:"code"`
			} `json:"exit"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("a message from the WebSocket: %v: %s", err, b)
		}
		if m.Error != nil {
			out.Write(m.Error)
		}
		out.Write(m.Stdout)
		if m.Exit != nil {
			return out.String(), m.Exit.Code
		}
	}
}

// A container started with a terminal and an open stdin (run -it) can be
// attached to, left and attached to again; its output is in its logs;
// its exit ends the attach.
func TestAttach(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	loadDemoImage(t, cl)
	agent := srv.StartAgent("attach-node")
	spec := busybox("/bin/busybox", "sh")
	spec.Tty, spec.StdinOpen = true, true
	sh := create(t, cl, "sh", agent.ID.NodeID, spec)
	waitState(t, cl, sh.Id, "running", running)

	attach := func(ctx context.Context) (ccv1.ExecService_ExecClient, *strings.Builder) {
		st, err := ccv1.NewExecServiceClient(srv.Conn("")).Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Start{Start: &ccv1.ExecStart{Container: "sh", Attach: true, LogsTail: 1, Tty: true, Stdin: true,
			Size: &ccv1.TerminalSize{Width: 90, Height: 20}}}}); err != nil {
			t.Fatal(err)
		}
		return st, &strings.Builder{}
	}
	typ := func(st ccv1.ExecService_ExecClient, s string) {
		if err := st.Send(&ccv1.ExecRequest{Msg: &ccv1.ExecRequest_Stdin{Stdin: []byte(s)}}); err != nil {
			t.Fatal(err)
		}
	}
	// until reads until out has want, or the stream's exit.
	until := func(st ccv1.ExecService_ExecClient, out *strings.Builder, want string) *ccv1.ExecExit {
		for !strings.Contains(out.String(), want) {
			m, err := st.Recv()
			if err != nil {
				t.Fatalf("attach: %v; output %q, want %q", err, out.String(), want)
			}
			if e := m.GetExit(); e != nil {
				return e
			}
			out.Write(m.GetStdout())
		}
		return nil
	}

	// expect types line until the output has want: a shell drops what is
	// typed while its line editor starts (busybox first asks the terminal
	// where the cursor is), so a line typed at once may be lost.
	expect := func(st ccv1.ExecService_ExecClient, out *strings.Builder, line, want string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			for !strings.Contains(out.String(), want) {
				m, err := st.Recv()
				if err != nil {
					done <- fmt.Errorf("%v; output %q, want %q", err, out.String(), want)
					return
				}
				out.Write(m.GetStdout())
			}
			done <- nil
		}()
		for range 10 {
			typ(st, line)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("attach: %v", err)
				}
				return
			case <-time.After(3 * time.Second):
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("attach: %v", err)
		}
	}

	ctx1, leave := context.WithTimeout(context.Background(), time.Minute)
	st, out := attach(ctx1)
	expect(st, out, "echo first $((20+1))\n", "first 21")
	leave() // the client goes; the shell stays

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, out = attach(ctx)
	expect(st, out, "stty size; echo second $((40+2))\n", "second 42")
	if !strings.Contains(out.String(), "20 90") {
		t.Errorf("the terminal's size after attach: %q", out.String())
	}
	typ(st, "exit 4\n")
	if e := until(st, out, "\x00never"); e == nil || e.Error != "" {
		t.Fatalf("attach did not end with the process: %v", e)
	}
	c := waitState(t, cl, sh.Id, "exited", exited)
	if c.Status.ExitCode != 4 {
		t.Errorf("exit code %d, want 4", c.Status.ExitCode)
	}
	if logs := logsOf(t, cl, sh.Id); !strings.Contains(logs, "first 21") || !strings.Contains(logs, "second 42") {
		t.Errorf("the logs of the terminal: %q", logs)
	}
}
