using Mesh.Agent.Cli;

return await AgentCli.Build().Parse(args).InvokeAsync();
