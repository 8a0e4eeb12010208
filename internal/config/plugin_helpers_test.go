package config

import (
	"reflect"
	"testing"
)

// pluginField returns a field of a plugin's decoded config by its Go name
// (the plugin's type is not visible from this package).
func pluginField(t *testing.T, c *Config, plugin, field string) any {
	t.Helper()
	v, ok := c.Plugins[plugin]
	if !ok {
		t.Fatalf("no config for plugin %s (have %v)", plugin, reflect.ValueOf(c.Plugins).MapKeys())
	}
	f := reflect.ValueOf(v).Elem().FieldByName(field)
	if !f.IsValid() {
		t.Fatalf("plugin %s config has no field %s", plugin, field)
	}
	return f.Interface()
}
