using Mesh.Coordinator.Cli;

return await CoordinatorCli.Build().Parse(args).InvokeAsync();
