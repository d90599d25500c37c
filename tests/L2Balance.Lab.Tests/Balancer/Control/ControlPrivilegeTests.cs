using System.Text.Json;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Control;

/// <summary>
/// A one-node cluster whose l2bal lets group <see cref="ControlGroup"/> change it
/// (docs/design.md#control-and-status); torn down even when the constructor throws.
/// </summary>
public sealed class ControlPrivilegeFixture : IAsyncLifetime
{
    /// <summary>A group every Debian system has (base-passwd), so the test creates none.</summary>
    public const string ControlGroup = "users";

    /// <summary>Its id in base-passwd.</summary>
    public const string ControlGroupId = "100";

    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private ClusterLab? _lab;

    public ClusterLab Lab => _lab ?? throw new InvalidOperationException("lab not built");

    public async Task InitializeAsync()
    {
        _lab = await ClusterLab.CreateAsync(nodes: 1, clientAddresses: 1, startTargetServers: false).WithTimeout(Deadline);
        try
        {
            Lab.StartBalancer(1, "--control-group", ControlGroup);
            await WaitForStateAsync("active");
        }
        catch
        {
            await DisposeAsync(); // xunit does not dispose a fixture whose start failed
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (_lab is { } lab)
        {
            _lab = null;
            await lab.DisposeAsync();
        }
    }

    /// <summary>Runs the published l2bal on the node as root, or through <c>setpriv</c> with <paramref name="setpriv"/>.</summary>
    public Task<LabRunResult> L2BalAsync(string[] setpriv, params string[] args) =>
        setpriv.Length == 0
            ? Lab.RunOnNode(1, ClusterBinaries.L2Bal, args).WithTimeout(Deadline)
            : Lab.RunOnNode(1, "setpriv", [.. setpriv, ClusterBinaries.L2Bal, .. args]).WithTimeout(Deadline);

    /// <summary>Root's <c>l2bal status --json</c>.</summary>
    public async Task<JsonElement> StatusAsync()
    {
        var result = await L2BalAsync([], "status", "--json");
        Assert.True(result.Succeeded, $"{result}\n{Describe()}");
        using var doc = JsonDocument.Parse(result.StdOut);
        return doc.RootElement.Clone();
    }

    /// <summary>Waits until the node advertises <paramref name="state"/>.</summary>
    public async Task<JsonElement> WaitForStateAsync(string state)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            // Right after the start the control socket may not exist yet.
            var result = await L2BalAsync([], "status", "--json");
            if (result.Succeeded)
            {
                using var doc = JsonDocument.Parse(result.StdOut);
                if (doc.RootElement.GetProperty("state").GetString() == state)
                {
                    return doc.RootElement.Clone();
                }
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"node 1 is not {state}:\n{result}\n{Describe()}");
            }
            await Task.Delay(100);
        }
    }

    public string Describe() => _lab?.Describe() ?? "(no lab)";
}

/// <summary>
/// Issue 14: only privileged users steer a node. On a one-node cluster, an unprivileged user may
/// read status but not drain; a member of <c>--control-group</c> may; an impostor holding the
/// control socket's name is refused by root's commands.
/// </summary>
public sealed class ControlPrivilegeTests(ControlPrivilegeFixture fixture) : IClassFixture<ControlPrivilegeFixture>, IAsyncLifetime
{
    private static readonly string[] Nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    private static readonly string[] NobodyInControlGroup = ["--reuid=65534", "--regid=65534", $"--groups={ControlPrivilegeFixture.ControlGroupId}"];

    public async Task InitializeAsync()
    {
        Assert.True((await fixture.L2BalAsync([], "undrain")).Succeeded, fixture.Describe());
        await fixture.WaitForStateAsync("active");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Drain_ByAnUnprivilegedUser_IsRefusedAndTheNodeStaysActive()
    {
        var before = await fixture.StatusAsync();

        var drain = await fixture.L2BalAsync(Nobody, "drain");

        Assert.True(drain.ExitCode != 0, $"an unprivileged drain succeeded: {drain}\n{fixture.Describe()}");
        Assert.Contains("refused", drain.StdOut, StringComparison.Ordinal);
        Assert.Contains("uid 65534", drain.StdOut, StringComparison.Ordinal);
        var status = await fixture.StatusAsync();
        Assert.Equal("active", status.GetProperty("state").GetString());
        Assert.Equal(0, status.GetProperty("draining").GetInt32());
        Assert.Equal(Refused(before) + 1, Refused(status));
        Assert.Equal(ControlPrivilegeFixture.ControlGroup, status.GetProperty("control").GetProperty("changeGroup").GetString());
    }

    private static long Refused(JsonElement status) => status.GetProperty("control").GetProperty("refused").GetInt64();

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Status_ByAnUnprivilegedUser_IsServed()
    {
        var status = await fixture.L2BalAsync(Nobody, "status", "--json");

        Assert.True(status.Succeeded, $"{status}\n{fixture.Describe()}");
        using var doc = JsonDocument.Parse(status.StdOut);
        Assert.Equal(1, doc.RootElement.GetProperty("nodeId").GetInt32());
        Assert.True((await fixture.L2BalAsync(Nobody, "owner", "198.18.64.10")).Succeeded);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Drain_ByAMemberOfTheControlGroup_IsServed()
    {
        var drain = await fixture.L2BalAsync(NobodyInControlGroup, "drain");

        Assert.True(drain.Succeeded, $"{drain}\n{fixture.Describe()}");
        await fixture.WaitForStateAsync("draining");
        Assert.True((await fixture.L2BalAsync(NobodyInControlGroup, "undrain")).Succeeded, fixture.Describe());
        await fixture.WaitForStateAsync("active");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Status_ByRootToAnImpostorSocket_IsRefusedNamingItsUid()
    {
        // The client namespace runs no l2bal, so the abstract name @l2bal is free there; nobody takes it
        // and answers every request as a daemon would (bounded: 20 answers, 60 s).
        const string impostor = """
            import signal, socket
            signal.alarm(60)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("\0l2bal")
            s.listen(4)
            print("listening", flush=True)
            for _ in range(20):
                c, _ = s.accept()
                c.recv(256)
                c.sendall(b"node 1/1: active, healthy\n")
                c.close()
            """;
        var client = fixture.Lab.Client;
        var squatter = client.Start("setpriv", [.. Nobody, "/usr/bin/python3", "-c", impostor]);
        var deadline = DateTime.UtcNow + ControlPrivilegeFixture.Deadline;
        LabRunResult status;
        do
        {
            await Task.Delay(100);
            status = await client.RunAsync(ClusterBinaries.L2Bal, ["status"], ControlPrivilegeFixture.Deadline).WithTimeout(ControlPrivilegeFixture.Deadline);
        }
        while (status.StdErr.Contains("no daemon answers", StringComparison.Ordinal) && !squatter.HasExited && DateTime.UtcNow < deadline);

        Assert.True(status.ExitCode != 0, $"root's status believed the impostor: {status}\n{squatter.Describe()}");
        Assert.Equal("", status.StdOut);
        Assert.Contains("refusing to talk to @l2bal: it is held by uid 65534", status.StdErr, StringComparison.Ordinal);
        var drain = await client.RunAsync(ClusterBinaries.L2Bal, ["drain"], ControlPrivilegeFixture.Deadline).WithTimeout(ControlPrivilegeFixture.Deadline);
        Assert.True(drain.ExitCode != 0, $"root's drain believed the impostor: {drain}");
        squatter.Stop();
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ControlSocket_AfterAcceptsFailForWantOfDescriptors_AnswersAgainAndCountsThem()
    {
        // ip netns exec execs the program: the lab process's pid is l2bal's.
        var pid = fixture.Lab.Balancer(1)!.Id;
        var limits = await File.ReadAllLinesAsync($"/proc/{pid}/limits");
        var original = limits.Single(l => l.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[3..5];
        var tight = Directory.GetFiles($"/proc/{pid}/fd").Length + 4;

        // Sixteen callers connect and say nothing: the daemon accepts four, then accept fails with
        // EMFILE until they hang up (bounded: 1.5 s, then every socket closed).
        const string callers = """
            import socket, time
            held = []
            for _ in range(16):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect("\0l2bal")
                held.append(s)
            time.sleep(1.5)
            for s in held:
                s.close()
            """;
        // Only the soft limit: raising a hard limit again needs CAP_SYS_RESOURCE, which the lab may lack.
        await Prlimit(pid, $"{tight}:{original[1]}");
        LabRunResult run;
        try
        {
            run = await fixture.Lab.RunOnNode(1, "/usr/bin/python3", ["-c", callers]).WithTimeout(ControlPrivilegeFixture.Deadline);
        }
        finally
        {
            await Prlimit(pid, $"{original[0]}:{original[1]}");
        }

        Assert.True(run.Succeeded, run.ToString());
        var status = await fixture.StatusAsync();
        Assert.True(status.GetProperty("control").GetProperty("acceptFailures").GetInt64() > 0, $"no accept failed: {status}\n{fixture.Describe()}");
        Assert.True((await fixture.L2BalAsync(Nobody, "status")).Succeeded, fixture.Describe());
    }

    private async Task Prlimit(int pid, string nofile)
    {
        var (code, _, stderr) = await PublishedProgram.RunAsync("prlimit", "--pid", $"{pid}", $"--nofile={nofile}");
        Assert.True(code == 0, $"prlimit --nofile={nofile}: {stderr}\n{fixture.Describe()}");
    }
}
