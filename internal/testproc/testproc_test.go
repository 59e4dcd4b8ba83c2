package testproc

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestChildDiesWithParent starts a middle process (this test binary again)
// that starts a long sleep with Start and prints its pid; killing the
// middle process must take the sleep with it.
func TestChildDiesWithParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PR_SET_PDEATHSIG is Linux's")
	}
	if os.Getenv("TESTPROC_MIDDLE") == "1" {
		return
	}
	middle := exec.Command(os.Args[0], "-test.run=^TestMiddle$")
	middle.Env = append(os.Environ(), "TESTPROC_MIDDLE=1")
	out, err := middle.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := middle.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(buf[:n-1]))
	if err != nil {
		t.Fatalf("middle printed %q", buf[:n])
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the child %d is not running: %v", pid, err)
	}
	_ = middle.Process.Kill()
	_ = middle.Wait()
	for deadline := testwait.End(t); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// The child is reparented; once killed it is reaped by init (or
		// stays a zombie of a subreaper, which /proc shows as state Z).
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || zombie(b) {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("the child %d outlived its parent until the test's deadline", pid)
}

func zombie(stat []byte) bool {
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}

// TestMiddle is the middle process of TestChildDiesWithParent: it starts the
// child, prints its pid and waits to be killed.
func TestMiddle(t *testing.T) {
	if os.Getenv("TESTPROC_MIDDLE") != "1" {
		t.Skip("the middle process of TestChildDiesWithParent")
	}
	child := exec.Command("sleep", "600")
	if err := Start(child); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString(strconv.Itoa(child.Process.Pid) + "\n")
	time.Sleep(10 * time.Minute)
}

// TestChildOutlivesItsStartersThread starts a child from a goroutine locked
// to its thread that then returns without unlocking, so that Go ends the
// thread: the child must live on (PR_SET_PDEATHSIG follows the forking
// thread, not the process).
func TestChildOutlivesItsStartersThread(t *testing.T) {
	child := exec.Command("sleep", "600")
	started := make(chan error, 1)
	var try func()
	try = func() {
		runtime.LockOSThread()
		if syscall.Gettid() == syscall.Getpid() {
			// The main thread is never ended: try on another.
			runtime.UnlockOSThread()
			go try()
			return
		}
		started <- Start(child) // then return locked: Go ends this thread
	}
	go try()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the child died when the thread that asked for it ended: %v", err)
	case <-time.After(2 * time.Second):
	}
}
