package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every setting of Config must have a default: the loader rejects a key of a
// configuration file that defaults lacks as unknown, so a setting missing there could
// not be set from a file at all.
func TestEverySettingHasADefault(t *testing.T) {
	var missing []string
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("koanf"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, key+".")
				continue
			}
			if _, ok := defaults[key]; !ok {
				missing = append(missing, key)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if len(missing) > 0 {
		t.Fatalf("settings without a default (a configuration file could not set them): %s", strings.Join(missing, ", "))
	}
}
