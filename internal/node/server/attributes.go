package server

import (
	"net/http"
	"strings"
)

// requestAttributes maps a request to the questions asked of the
// authorizer, in order; the request is allowed when any is. This is the
// v1.37 kubelet's mapping with fine-grained authorization:
//
//	/pods, /allocatedPods, /runningpods  nodes/pods,    then nodes/proxy
//	/healthz                              nodes/healthz, then nodes/proxy
//	/configz                              nodes/configz, then nodes/proxy
//	/stats                                nodes/stats
//	/metrics                              nodes/metrics
//	/logs                                 nodes/log
//	/checkpoint                           nodes/checkpoint
//	/statusz                              nodes/statusz
//	/flagz                                nodes/configz
//	anything else (/containerLogs, /exec, nodes/proxy
//	  /attach, /portForward, /run, ...)
//
// The verb comes from the HTTP method: GET get, POST create, PUT update,
// PATCH patch, DELETE delete, anything else "" (which no rule allows).
func requestAttributes(u *userInfo, nodeName string, r *http.Request) []attributes {
	path := r.URL.Path
	var subresources []string
	switch {
	case isSubpath(path, "/allocatedPods"), isSubpath(path, "/pods"), isSubpath(path, "/runningpods/"):
		subresources = append(subresources, "pods")
	case isSubpath(path, "/healthz"):
		subresources = append(subresources, "healthz")
	case isSubpath(path, "/configz"):
		subresources = append(subresources, "configz")
	}
	switch {
	case isSubpath(path, "/stats/"):
		subresources = append(subresources, "stats")
	case isSubpath(path, "/metrics"):
		subresources = append(subresources, "metrics")
	case isSubpath(path, "/logs/"):
		subresources = append(subresources, "log")
	case isSubpath(path, "/checkpoint/"):
		subresources = append(subresources, "checkpoint")
	case isSubpath(path, "/statusz"):
		subresources = append(subresources, "statusz")
	case isSubpath(path, "/flagz"):
		subresources = append(subresources, "configz")
	default:
		subresources = append(subresources, "proxy")
	}
	verb := apiVerb(r.Method)
	out := make([]attributes, 0, len(subresources))
	for _, sub := range subresources {
		out = append(out, attributes{User: u, Verb: verb, Subresource: sub, Name: nodeName})
	}
	return out
}

func apiVerb(method string) string {
	switch method {
	case http.MethodGet:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// isSubpath reports whether sub is path or below it ("/pods" and
// "/pods/x", not "/podsx"); a trailing slash of path is ignored.
func isSubpath(sub, path string) bool {
	path = strings.TrimSuffix(path, "/")
	return sub == path || (strings.HasPrefix(sub, path) && sub[len(path)] == '/')
}
