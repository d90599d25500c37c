// l2lab drives network namespaces and uses l2bal's hash mirror, both Linux-only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
