package admin

import (
	"net/http/httptest"
	"testing"
)

// TestJSONArrayMatchesWriteJSON: an array written element by element is
// byte for byte, headers included, what writeJSON writes for the slice.
func TestJSONArrayMatchesWriteJSON(t *testing.T) {
	type item struct {
		Name string         `json:"name"`
		Tags []string       `json:"tags"`
		M    map[string]int `json:"m"`
		HTML string         `json:"html"`
	}
	for _, items := range [][]item{
		{},
		{{Name: "a", Tags: []string{}, M: map[string]int{}}},
		{{Name: "a", Tags: []string{"x", "y"}, M: map[string]int{"b": 2, "a": 1}, HTML: "<tag> & \u2028"}, {Name: "b"}, {}},
	} {
		whole := httptest.NewRecorder()
		if err := writeJSON(whole, 200, items); err != nil {
			t.Fatal(err)
		}
		streamed := httptest.NewRecorder()
		arr := jsonArray[item]{w: streamed}
		for _, it := range items {
			if err := arr.add(it); err != nil {
				t.Fatal(err)
			}
		}
		if err := arr.close(); err != nil {
			t.Fatal(err)
		}
		if got, want := streamed.Body.String(), whole.Body.String(); got != want {
			t.Errorf("%d items: streamed\n%q\nwant\n%q", len(items), got, want)
		}
		if streamed.Code != whole.Code {
			t.Errorf("status %d, want %d", streamed.Code, whole.Code)
		}
		for _, h := range []string{"Content-Type", "Cache-Control"} {
			if got, want := streamed.Header().Get(h), whole.Header().Get(h); got != want {
				t.Errorf("%s %q, want %q", h, got, want)
			}
		}
	}
}
