package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
)

// TestMoveBackUnavailable: the copy of a migration from another host of the cluster is not
// removed while the registry cannot say whether it places the VPS here (the copy's destroy
// would release the claims of the VPS that runs at the source): removeIncoming (migrate-abort's)
// and Destroy refuse, naming the destroy to try again, and the copy stays. A copy that came
// from no cluster host asks nothing.
func TestMoveBackUnavailable(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	// An agent that never answers (it exits at once): every request is ErrUnavailable.
	cl := registry.New(registry.Settings{Root: st.Root, Endpoints: []string{"http://127.0.0.1:9"}, Node: "A", Timeout: time.Second})
	cl.Agent = "/bin/false"
	r := &Runtime{St: st, Cluster: cl}
	const id = container.ID(7)
	if err := os.MkdirAll(st.VPSDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(st.VPSDir(id), incompleteFile)
	if err := os.WriteFile(mark, []byte("migration of VPS 7 (vpsctl PID 1)\n"+sourceNodeKey+"B\n"+sourceUIDsKey+"1000000:65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if node, uids := r.incomingSource(id); node != "B" || uids != "1000000:65536" {
		t.Fatalf("incomingSource: %q %q", node, uids)
	}
	err = r.removeIncoming(context.Background(), &store.Config{ID: id}, nil)
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "destroy 7") || !strings.Contains(err.Error(), "host B") {
		t.Fatalf("removeIncoming with the registry unavailable: %v", err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the copy was removed: %v", err)
	}
	if err := store.WriteFileAtomic(st.Path(id, "vps.conf"), (&store.Config{ID: id, Template: "busybox"}).Format(), 0o600); err != nil {
		t.Fatal(err)
	}
	err = r.Destroy(context.Background(), id, false)
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "destroy 7") {
		t.Fatalf("Destroy with the registry unavailable: %v", err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the copy was removed by Destroy: %v", err)
	}
	if _, err := st.LoadConfig(id); err != nil {
		t.Fatalf("Destroy removed the copy's config: %v", err)
	}
	// A clone's or a restore's mark names no source: nothing to give back, nothing asked.
	if err := os.WriteFile(mark, []byte("clone of 6 (vpsctl PID 1)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.moveBack(context.Background(), id); err != nil {
		t.Fatalf("moveBack without a source: %v", err)
	}
}
