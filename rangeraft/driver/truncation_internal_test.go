package driver

import "testing"

func TestTruncationPolicyCheckEntries(t *testing.T) {
	if got := DefaultTruncationPolicy().checkEntries(); got != DefaultTruncateThreshold/4+1 {
		t.Errorf("default policy decides every %d applied entries, want %d", got, DefaultTruncateThreshold/4+1)
	}
	if got := (TruncationPolicy{ThresholdEntries: 5000, CheckEntries: 1000}).checkEntries(); got != 1000 {
		t.Errorf("CheckEntries 1000 decides every %d", got)
	}
}
