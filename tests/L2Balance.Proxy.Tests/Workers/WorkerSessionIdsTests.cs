using L2Balance.Proxy.Workers;
using Xunit;

namespace L2Balance.Proxy.Tests.Workers;

/// <summary>The supervisor's session ids: unique across workers, and each names its worker back.</summary>
public class WorkerSessionIdsTests
{
    [Fact]
    public void Global_SameLocalIdInEveryWorker_IsUniqueAndSplitsBack()
    {
        var ids = new HashSet<long>();
        for (var worker = 0; worker < 3; worker++)
        {
            for (long local = 1; local <= 50; local++)
            {
                var global = WorkerSessionIds.Global(local, worker, 3)!.Value;
                Assert.True(ids.Add(global));
                Assert.Equal((worker, local), WorkerSessionIds.Split(global, 3));
            }
        }
    }

    [Fact]
    public void Global_LocalIdTooLarge_IsNull()
    {
        Assert.Null(WorkerSessionIds.Global(long.MaxValue / 2, 1, 4));
    }

    [Fact]
    public void RewriteSessionLine_WorkersSessionLine_CarriesTheSupervisorsId()
    {
        Assert.Equal("session 9 connect 198.18.0.9:40000 198.18.1.1:1080 198.18.1.1:50000 198.18.2.1:80 0 movable",
            WorkerSessionIds.RewriteSessionLine("session 4 connect 198.18.0.9:40000 198.18.1.1:1080 198.18.1.1:50000 198.18.2.1:80 0 movable", 1, 2));
    }

    [Theory]
    [InlineData("end")]
    [InlineData("error: no-key")]
    [InlineData("session x connect")]
    [InlineData("session -1 connect")]
    [InlineData("session 1")]
    public void RewriteSessionLine_AnythingElse_IsNull(string line)
    {
        Assert.Null(WorkerSessionIds.RewriteSessionLine(line, 0, 2));
    }

    [Fact]
    public void SplitMove_Ids_GroupedPerWorkerDistinctInOrder()
    {
        var split = WorkerSessionIds.SplitMove([9, 4, 3, 9, 6], 2);
        Assert.Equal([2, 3], split[0]);
        Assert.Equal([4, 1], split[1]);
    }

    [Fact]
    public void MergeMove_AnswersOfBothWorkers_InRequestOrderWithSupervisorIds()
    {
        var unanswered = new List<long>();
        var merged = WorkerSessionIds.MergeMove([9, 4, 3, 9], 2, ["stayed 2 not-established\nend\n", "moved 4 12\nmoved 1 3\nend\n"], unanswered.Add);
        Assert.Equal("moved 9 12\nstayed 4 not-established\nmoved 3 3\nend\n", merged);
        Assert.Empty(unanswered);
    }

    [Fact]
    public void MergeMove_WorkerWithoutAnswer_ItsSessionsStayWithReasonWorkers()
    {
        var unanswered = new List<long>();
        var merged = WorkerSessionIds.MergeMove([2, 3, 5], 2, ["moved 1 7\nend\n", null], unanswered.Add);
        Assert.Equal("moved 2 7\nstayed 3 workers\nstayed 5 workers\nend\n", merged);
        Assert.Equal([3, 5], unanswered);
    }

    [Fact]
    public void MergeMove_WorkerAnswersAnError_ItsSessionsStay()
    {
        var unanswered = new List<long>();
        var merged = WorkerSessionIds.MergeMove([1], 2, [null, "error: internal error\n"], unanswered.Add);
        Assert.Equal("stayed 1 workers\nend\n", merged);
    }
}
