package main

import _ "volplane/internal/controlplane"

func main() {}
