using Mesh.NatLab.Scenarios;

return Runner.Run(args);
