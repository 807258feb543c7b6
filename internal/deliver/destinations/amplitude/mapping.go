package amplitude

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// segmentGroupType is the group type a Segment group call sets in
// Amplitude: Segment's own "legacy group behaviour", used when no trait
// names the group type.
const segmentGroupType = "[Segment] Group"

// segment is the part of a Segment spec event that the mapping reads.
// Context fields are [text], which takes numbers and booleans as their
// literal text, so that one odd context value does not lose the event.
type segment struct {
	Type         string                     `json:"type"`
	Event        json.RawMessage            `json:"event"`
	Name         text                       `json:"name"`
	Category     text                       `json:"category"`
	UserID       json.RawMessage            `json:"userId"`
	AnonymousID  json.RawMessage            `json:"anonymousId"`
	GroupID      json.RawMessage            `json:"groupId"`
	MessageID    text                       `json:"messageId"`
	Timestamp    text                       `json:"timestamp"`
	Properties   json.RawMessage            `json:"properties"`
	Traits       json.RawMessage            `json:"traits"`
	Context      segmentContext             `json:"context"`
	Integrations map[string]json.RawMessage `json:"integrations"`
}

type segmentContext struct {
	IP     text `json:"ip"`
	Locale text `json:"locale"`
	App    struct {
		Version text `json:"version"`
	} `json:"app"`
	Device struct {
		ID            text `json:"id"`
		AdvertisingID text `json:"advertisingId"`
		Type          text `json:"type"`
		Brand         text `json:"brand"`
		Manufacturer  text `json:"manufacturer"`
		Model         text `json:"model"`
	} `json:"device"`
	OS struct {
		Name    text `json:"name"`
		Version text `json:"version"`
	} `json:"os"`
	Network struct {
		Carrier text `json:"carrier"`
	} `json:"network"`
	Location struct {
		Country   text            `json:"country"`
		Region    text            `json:"region"`
		City      text            `json:"city"`
		Latitude  json.RawMessage `json:"latitude"`
		Longitude json.RawMessage `json:"longitude"`
	} `json:"location"`
	Library struct {
		Name    text `json:"name"`
		Version text `json:"version"`
	} `json:"library"`
	Page      json.RawMessage `json:"page"`
	UserAgent text            `json:"userAgent"`
}

// segmentProperties are the properties the mapping lifts out of a track,
// page or screen call; all of them stay in event_properties too.
type segmentProperties struct {
	Name        text            `json:"name"`
	Category    text            `json:"category"`
	Revenue     json.RawMessage `json:"revenue"`
	Price       json.RawMessage `json:"price"`
	Quantity    json.RawMessage `json:"quantity"`
	ProductID   text            `json:"productId"`
	RevenueType text            `json:"revenueType"`
}

// integrationOptions are the integration-specific options Segment's
// Amplitude destination reads from integrations.Amplitude.
type integrationOptions struct {
	SessionID json.RawMessage `json:"session_id"`
	Groups    json.RawMessage `json:"groups"`
}

// event is one Amplitude event, its keys in the order of Amplitude's
// documentation. Optional keys are left out when empty.
type event struct {
	UserID             string          `json:"user_id,omitempty"`
	DeviceID           string          `json:"device_id,omitempty"`
	EventType          string          `json:"event_type"`
	Time               int64           `json:"time,omitempty"`
	EventProperties    json.RawMessage `json:"event_properties,omitempty"`
	UserProperties     json.RawMessage `json:"user_properties,omitempty"`
	Groups             json.RawMessage `json:"groups,omitempty"`
	AppVersion         string          `json:"app_version,omitempty"`
	Platform           string          `json:"platform,omitempty"`
	OSName             string          `json:"os_name,omitempty"`
	OSVersion          string          `json:"os_version,omitempty"`
	DeviceBrand        string          `json:"device_brand,omitempty"`
	DeviceManufacturer string          `json:"device_manufacturer,omitempty"`
	DeviceModel        string          `json:"device_model,omitempty"`
	Carrier            string          `json:"carrier,omitempty"`
	Country            string          `json:"country,omitempty"`
	Region             string          `json:"region,omitempty"`
	City               string          `json:"city,omitempty"`
	Language           string          `json:"language,omitempty"`
	Price              json.RawMessage `json:"price,omitempty"`
	Quantity           json.RawMessage `json:"quantity,omitempty"`
	Revenue            json.RawMessage `json:"revenue,omitempty"`
	ProductID          string          `json:"productId,omitempty"`
	RevenueType        string          `json:"revenueType,omitempty"`
	LocationLat        json.RawMessage `json:"location_lat,omitempty"`
	LocationLng        json.RawMessage `json:"location_lng,omitempty"`
	IP                 string          `json:"ip,omitempty"`
	IDFA               string          `json:"idfa,omitempty"`
	ADID               string          `json:"adid,omitempty"`
	SessionID          int64           `json:"session_id,omitempty"`
	InsertID           string          `json:"insert_id,omitempty"`
	Library            string          `json:"library,omitempty"`
}

// mapped is one event ready to send: its Amplitude JSON and the IDs that
// Amplitude's throttling answers name.
type mapped struct {
	json     []byte
	userID   string
	deviceID string
}

// mapEvent turns one Segment event into an Amplitude event. minIDLength is
// the shortest user_id or device_id Amplitude keeps. An event that cannot
// be sent gets ok false and its Discard result.
func mapEvent(e *deliver.Event, minIDLength int) (m mapped, res deliver.Result, ok bool) {
	var s segment
	if err := json.Unmarshal(e.JSON, &s); err != nil {
		return m, invalid("the event is not a Segment event: %v", err), false
	}
	typ := s.Type
	if typ == "" {
		typ = e.Type
	}
	out := event{}
	switch typ {
	case "track":
		name, _ := str(s.Event)
		if strings.TrimSpace(name) == "" {
			return m, invalid("a track event needs a non-empty event name"), false
		}
		out.EventType = name
		out.EventProperties = object(s.Properties)
		liftRevenue(&out, s.Properties)
	case "page", "screen":
		out.EventType = viewedName(typ, s)
		out.EventProperties = object(s.Properties)
	case "identify":
		out.EventType = "$identify"
		out.UserProperties = setOperation(object(s.Traits))
	case "group":
		id, _ := str(s.GroupID)
		if id == "" {
			return m, invalid("a group event needs a groupId"), false
		}
		groups, _ := json.Marshal(map[string]string{segmentGroupType: id})
		out.EventType = "$identify"
		out.Groups = groups
		out.UserProperties = setOperation(groups)
	case "alias":
		return m, deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonUnsupportedEventType,
			Error: "Amplitude does not take alias events (its usermap API needs the Portfolio add-on)"}, false
	default:
		return m, deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonUnsupportedEventType,
			Error: fmt.Sprintf("Amplitude does not take events of type %q", typ)}, false
	}

	// IDs: Amplitude drops one shorter than the minimum; drop it here so
	// that what is sent is what Amplitude keeps, and refuse an event left
	// with none.
	userID, _ := str(s.UserID)
	deviceID := string(s.Context.Device.ID)
	if deviceID == "" {
		deviceID, _ = str(s.AnonymousID)
	}
	if utf8.RuneCountInString(userID) < minIDLength {
		userID = ""
	}
	if utf8.RuneCountInString(deviceID) < minIDLength {
		deviceID = ""
	}
	if userID == "" && deviceID == "" {
		return m, invalid("the event has no userId, context.device.id or anonymousId of at least %d characters, which Amplitude requires", minIDLength), false
	}
	out.UserID, out.DeviceID = userID, deviceID

	if ts := strings.TrimSpace(string(s.Timestamp)); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return m, invalid("timestamp %q is not an ISO 8601 time", ts), false
		}
		out.Time = t.UnixMilli()
	}
	out.InsertID = string(s.MessageID)
	if out.InsertID == "" {
		out.InsertID = e.MessageID
	}

	c := &s.Context
	out.IP = string(c.IP)
	out.Language = string(c.Locale)
	out.AppVersion = string(c.App.Version)
	switch out.Platform = string(c.Device.Type); strings.ToLower(out.Platform) {
	case "ios":
		out.Platform = "iOS" // as Amplitude's own SDKs name the platforms
	case "android":
		out.Platform = "Android"
	case "":
		if object(c.Page) != nil || c.UserAgent != "" {
			out.Platform = "Web"
		}
	}
	out.OSName, out.OSVersion = string(c.OS.Name), string(c.OS.Version)
	out.DeviceBrand, out.DeviceManufacturer, out.DeviceModel = string(c.Device.Brand), string(c.Device.Manufacturer), string(c.Device.Model)
	out.Carrier = string(c.Network.Carrier)
	out.Country, out.Region, out.City = string(c.Location.Country), string(c.Location.Region), string(c.Location.City)
	out.LocationLat, out.LocationLng = number(c.Location.Latitude), number(c.Location.Longitude)
	switch strings.ToLower(string(c.Device.Type)) {
	case "ios":
		out.IDFA = string(c.Device.AdvertisingID)
	case "android":
		out.ADID = string(c.Device.AdvertisingID)
	}
	if c.Library.Name != "" {
		out.Library = string(c.Library.Name)
		if c.Library.Version != "" {
			out.Library += "/" + string(c.Library.Version)
		}
	}

	if raw, found := s.Integrations["Amplitude"]; found {
		var opts integrationOptions
		if json.Unmarshal(raw, &opts) == nil {
			if n := number(opts.SessionID); n != nil {
				out.SessionID, _ = strconv.ParseInt(string(n), 10, 64)
			}
			if typ == "track" || typ == "page" || typ == "screen" {
				out.Groups = object(opts.Groups)
			}
		}
	}

	b, err := json.Marshal(out)
	if err != nil {
		return m, invalid("encoding the Amplitude event: %v", err), false
	}
	return mapped{json: b, userID: userID, deviceID: deviceID}, res, true
}

// viewedName is the event type of a page or screen call, named the way
// Segment's Amplitude destination names them with its "Track Named Pages"
// and "Track Categorized Pages" settings: "Viewed Merchant Settings Page"
// for category Merchant and name Settings, "Viewed Settings Page" with
// only a name, "Viewed Merchant Page" with only a category, and "Loaded a
// Page" (its "Track All Pages" name) with neither. Screens end in
// "Screen".
func viewedName(typ string, s segment) string {
	var p segmentProperties
	_ = json.Unmarshal(s.Properties, &p) // lenient: properties are optional
	name, category := strings.TrimSpace(string(s.Name)), strings.TrimSpace(string(s.Category))
	if name == "" {
		name = strings.TrimSpace(string(p.Name))
	}
	if category == "" {
		category = strings.TrimSpace(string(p.Category))
	}
	noun := "Page"
	if typ == "screen" {
		noun = "Screen"
	}
	if name == "" && category == "" {
		return "Loaded a " + noun
	}
	parts := []string{"Viewed"}
	for _, p := range []string{category, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(append(parts, noun), " ")
}

// liftRevenue copies Segment's revenue properties to Amplitude's top-level
// revenue fields, so that Amplitude's revenue charts see them.
func liftRevenue(out *event, properties json.RawMessage) {
	var p segmentProperties
	if json.Unmarshal(properties, &p) != nil {
		return
	}
	out.Revenue, out.Price = number(p.Revenue), number(p.Price)
	if q := number(p.Quantity); q != nil {
		if _, err := strconv.ParseInt(string(q), 10, 64); err == nil {
			out.Quantity = q
		}
	}
	if out.Revenue != nil || out.Price != nil {
		out.ProductID, out.RevenueType = string(p.ProductID), string(p.RevenueType)
	}
}

// setOperation wraps traits in Amplitude's $set user-property operation.
func setOperation(traits json.RawMessage) json.RawMessage {
	if traits == nil {
		traits = json.RawMessage("{}")
	}
	return append(append([]byte(`{"$set":`), traits...), '}')
}

// object returns raw if it is a non-empty JSON object, nil otherwise.
func object(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return nil
	}
	if inner := bytes.TrimSpace(raw[1 : len(raw)-1]); len(inner) == 0 {
		return nil
	}
	return raw
}

// number returns a JSON number from raw: the number itself, or the number
// a string holds ("32"); nil when raw is neither.
func number(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
	} else {
		s = string(raw)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f || f > 1e300 || f < -1e300 {
		return nil
	}
	if raw[0] != '"' {
		return raw
	}
	return json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64))
}

// str reads an ID or a name that Segment allows to be a string or a
// number; anything else is "".
func str(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	if n := number(raw); n != nil {
		return string(n), true
	}
	return "", false
}

// text is a string field that also takes a number or a boolean as its
// literal text; an object, an array or null leave it empty.
type text string

// UnmarshalJSON implements json.Unmarshaler leniently; it never fails.
func (t *text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || b[0] == '{' || b[0] == '[' || string(b) == "null":
		*t = ""
	case b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			*t = text(s)
		}
	default:
		*t = text(b)
	}
	return nil
}

// invalid is the Discard result of an event that Amplitude would refuse.
func invalid(format string, args ...any) deliver.Result {
	return deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonInvalidEvent, Error: fmt.Sprintf(format, args...)}
}
