using Xunit;

// One lab per assembly, built once; tests never build namespaces concurrently.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
