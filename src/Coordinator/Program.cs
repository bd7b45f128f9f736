using Mesh.Coordinator.Cli;

return await CliRunner.RunAsync("mesh-coordinator", CoordinatorCli.Build(), args);
