package volumebinding

import (
	"testing"
	"time"
)

func TestShapeScore(t *testing.T) {
	binPack := []ShapePoint{{0, 0}, {100, 10}}
	steps := []ShapePoint{{20, 2}, {50, 10}, {80, 4}}
	tests := []struct {
		shape []ShapePoint
		util  int64
		want  int64
	}{
		{DefaultShape, 0, 100}, {DefaultShape, 50, 50}, {DefaultShape, 100, 0}, {DefaultShape, 25, 75},
		{binPack, 0, 0}, {binPack, 30, 30}, {binPack, 100, 100},
		{steps, 0, 20}, {steps, 20, 20}, {steps, 35, 60}, {steps, 50, 100}, {steps, 65, 70}, {steps, 90, 40},
	}
	for _, tt := range tests {
		if got := shapeScore(tt.shape, tt.util); got != tt.want {
			t.Errorf("shapeScore(%v, %d) = %d, want %d", tt.shape, tt.util, got, tt.want)
		}
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		name string
		use  map[string]classUse
		want int64
	}{
		{"nothing", nil, 0},
		{"quarter used", map[string]classUse{"a": {requested: 1, capacity: 4}}, 75},
		{"full", map[string]classUse{"a": {requested: 4, capacity: 4}}, 0},
		{"over capacity counts as full", map[string]classUse{"a": {requested: 5, capacity: 4}}, 0},
		{"no capacity counts as full", map[string]classUse{"a": {requested: 1}}, 0},
		{"classes averaged", map[string]classUse{"a": {requested: 1, capacity: 4}, "b": {requested: 1, capacity: 2}}, 63},
	}
	for _, tt := range tests {
		if got := score(DefaultShape, tt.use); got != tt.want {
			t.Errorf("%s: score = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		args Args
		ok   bool
	}{
		{"defaults", Args{}.withDefaults(), true},
		{"bin-pack", Args{Shape: []ShapePoint{{0, 0}, {100, 10}}}, true},
		{"no score", Args{NoScore: true}.withDefaults(), true},
		{"negative timeout", Args{BindTimeout: -time.Second}, false},
		{"utilization out of range", Args{Shape: []ShapePoint{{0, 0}, {101, 10}}}, false},
		{"score out of range", Args{Shape: []ShapePoint{{0, 11}}}, false},
		{"utilization not increasing", Args{Shape: []ShapePoint{{50, 1}, {50, 2}}}, false},
		{"shape with scoring off", Args{NoScore: true, Shape: DefaultShape}, false},
	}
	for _, tt := range tests {
		if err := tt.args.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
	d := Args{}.withDefaults()
	if d.BindTimeout != DefaultBindTimeout || len(d.Shape) != 2 {
		t.Errorf("defaults: %+v", d)
	}
}
