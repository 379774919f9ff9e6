package procmem

import (
	"os"
	"syscall"
	"testing"
)

// TestResidentFilesGrows maps a file, touches its pages and sees the
// process's resident file pages grow by about its size.
func TestResidentFilesGrows(t *testing.T) {
	const size = 16 << 20
	f, err := os.CreateTemp(t.TempDir(), "pages")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	before, ok := ResidentFiles()
	if !ok {
		t.Fatal("no resident file pages read")
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	for i := 0; i < size; i += os.Getpagesize() {
		m[i] = 1
	}
	after, _ := ResidentFiles()
	if grew := after - before; grew < size*9/10 {
		t.Fatalf("resident file pages grew by %d bytes after touching a %d-byte mapping", grew, size)
	}
}
