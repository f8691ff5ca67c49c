package binder

// Event reasons, as upstream's persistentvolume-controller emits them, so
// that tools and people matching on them keep working.
const (
	reasonFailedBinding             = "FailedBinding"
	reasonVolumeMismatch            = "VolumeMismatch"
	reasonVolumeFailedRecycle       = "VolumeFailedRecycle"
	reasonVolumeRecycled            = "VolumeRecycled"
	reasonRecyclerPod               = "RecyclerPod"
	reasonVolumeDelete              = "VolumeDelete"
	reasonVolumeFailedDelete        = "VolumeFailedDelete"
	reasonExternalProvisioning      = "ExternalProvisioning"
	reasonProvisioningFailed        = "ProvisioningFailed"
	reasonProvisioningCleanupFailed = "ProvisioningCleanupFailed"
	reasonProvisioningSucceeded     = "ProvisioningSucceeded"
	reasonWaitForFirstConsumer      = "WaitForFirstConsumer"
	reasonWaitForPodScheduled       = "WaitForPodScheduled"
	reasonClaimLost                 = "ClaimLost"
	reasonClaimMisbound             = "ClaimMisbound"
	reasonVolumeUnknownReclaim      = "VolumeUnknownReclaimPolicy"
)

// Component is the event source of the controller, upstream's name.
const Component = "persistentvolume-controller"
