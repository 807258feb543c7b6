package deliver_test

import (
	"testing"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/function"
)

func TestFunctionResult(t *testing.T) {
	for _, tc := range []struct {
		class   string
		status  function.Status
		outcome deliver.Outcome
		reason  string
		code    int
	}{
		{"", function.OK, deliver.Delivered, "", 0},
		{"RetryError", function.Retry, deliver.Retry, deliver.ReasonFunctionRetry, 0},
		{function.ClassTimeout, function.Retry, deliver.Retry, deliver.ReasonTimeout, 0},
		{"FetchError", function.Retry, deliver.Retry, deliver.ReasonConnection, 0},
		{"EventNotSupported", function.Discard, deliver.Discard, deliver.ReasonUnsupportedEventType, 0},
		{function.ClassNoHandler, function.Discard, deliver.Discard, deliver.ReasonUnsupportedEventType, 0},
		{"InvalidEventPayload", function.Discard, deliver.Discard, deliver.ReasonInvalidEvent, 0},
		{"ValidationError", function.Discard, deliver.Discard, deliver.ReasonInvalidEvent, 0},
		{function.ClassBadReturn, function.Discard, deliver.Discard, deliver.ReasonInvalidEvent, 0},
		{"InvalidSettings", function.Discard, deliver.Discard, deliver.ReasonInvalidSettings, 0},
		{function.ClassMemoryLimit, function.Discard, deliver.Discard, deliver.ReasonMemoryLimit, 0},
		{"TypeError", function.Discard, deliver.Discard, deliver.ReasonFunctionError, 0},
		{"DropEvent", function.Drop, deliver.Dropped, "insert_function", 0},
		{"Status503", function.Retry, deliver.Retry, "http_503", 503},
		{"Status400", function.Discard, deliver.Discard, "http_400", 400},
		{"StatusX", function.Discard, deliver.Discard, deliver.ReasonFunctionError, 0},
	} {
		r := deliver.FunctionResult(function.Outcome{Status: tc.status, Class: tc.class, Message: "m"}, "log line")
		if r.Outcome != tc.outcome || r.Reason != tc.reason || r.StatusCode != tc.code {
			t.Errorf("%s/%s: got %v %q %d, want %v %q %d", tc.class, tc.status, r.Outcome, r.Reason, r.StatusCode, tc.outcome, tc.reason, tc.code)
		}
		if tc.status != function.OK && (r.Error == "" || string(r.Response) != "log line") {
			t.Errorf("%s: error %q, response %q: want the message and the logs", tc.class, r.Error, r.Response)
		}
	}
}
