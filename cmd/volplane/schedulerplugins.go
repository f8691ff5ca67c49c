package main

import (
	"volplane/internal/controlplane"
	"volplane/internal/scheduler/nodevolumelimits"
	"volplane/internal/scheduler/volumebinding"
	"volplane/internal/scheduler/volumerestrictions"
	"volplane/internal/scheduler/volumezone"
)

// schedulerPlugins are volplane's volume plugins for the embedded
// scheduler (`up` and `server`), in place of upstream's.
func schedulerPlugins() []controlplane.SchedulerPlugin {
	return []controlplane.SchedulerPlugin{
		{Name: volumebinding.Name, Factory: volumebinding.Factory(volumebinding.Args{})},
		{Name: volumezone.Name, Factory: volumezone.Factory()},
		{Name: volumerestrictions.Name, Factory: volumerestrictions.Factory()},
		{Name: nodevolumelimits.Name, Factory: nodevolumelimits.Factory()},
	}
}
